package node

import (
	"runtime/debug"
	"sync"
)

// version, when set at link time (-ldflags "-X
// github.com/quorumkv/quorumkv/node.version=…", as `make build` does with
// `git describe`), is what Version answers.
var version string

// Version names this build: the link-time version if one was set, else the
// module version when the binary was built from a tagged release (go install
// …@vX.Y.Z), else "devel" followed by the commit it was built from when the
// toolchain recorded one ("+dirty" when the tree had uncommitted changes). Nodes gossip it, /v1/status and
// `quorumkv status` show it per member, and /metrics exports it as
// quorumkv_build_info, so a rolling upgrade can be followed.
var Version = sync.OnceValue(func() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" || v != "devel" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v += "-" + rev
	if dirty {
		v += "+dirty"
	}
	return v
})
