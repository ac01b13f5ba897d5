package resp

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"net"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/redcon"
)

// The connection and server commands: what redis-cli, redis-benchmark and
// client libraries send around the key-value commands.

// redisVersion is the Redis version INFO claims: the RESP2 command set of
// Redis 7 that quorumkv implements is a tiny subset, but clients that gate
// behaviour on the version (HELLO, CLIENT SETINFO) fall back cleanly when
// those answer errors.
const redisVersion = "7.0.0"

// CONSISTENCY [level]: with a level, set the connection's level (one,
// quorum, all, strong, or a replica count 1..N for r = w = that count);
// without, answer the current one.
func cmdConsistency(c *client, out []byte, args [][]byte) []byte {
	switch len(args) {
	case 1:
		return redcon.AppendBulkString(out, c.level.String())
	case 2:
		lvl, err := parseLevel(args[1], c.s.cfg.Replicas)
		if err != nil {
			return c.appendError(out, err)
		}
		c.level = lvl
		return redcon.AppendOK(out)
	}
	return appendArityError(out, "consistency")
}

func cmdPing(c *client, out []byte, args [][]byte) []byte {
	switch len(args) {
	case 1:
		return redcon.AppendString(out, "PONG")
	case 2:
		return redcon.AppendBulk(out, args[1])
	}
	return appendArityError(out, "ping")
}

func cmdEcho(c *client, out []byte, args [][]byte) []byte {
	return redcon.AppendBulk(out, args[1])
}

func cmdQuit(c *client, out []byte, args [][]byte) []byte {
	c.quit = true
	return redcon.AppendOK(out)
}

// RESET: back to a fresh connection (default level, no name, not
// authenticated when a token is required).
func cmdReset(c *client, out []byte, args [][]byte) []byte {
	c.level = c.s.cfg.DefaultLevel
	c.name, c.lib = "", ""
	c.authed = c.s.cfg.AuthToken == ""
	return redcon.AppendString(out, "RESET")
}

// AUTH [user] token: compare with Config.AuthToken; the user name is ignored.
func cmdAuth(c *client, out []byte, args [][]byte) []byte {
	if len(args) > 3 {
		return redcon.AppendError(out, "ERR syntax error")
	}
	if c.s.cfg.AuthToken == "" {
		return redcon.AppendError(out, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	}
	if subtle.ConstantTimeCompare(args[len(args)-1], []byte(c.s.cfg.AuthToken)) != 1 {
		c.authed = false
		return redcon.AppendError(out, "WRONGPASS invalid username-password pair or user is disabled.")
	}
	c.authed = true
	return redcon.AppendOK(out)
}

// HELLO always fails: quorumkv speaks RESP2 only. Every client library
// takes an error here as "old server" and goes on in RESP2 (sending AUTH
// and CLIENT SETNAME separately when it has them).
func cmdHello(c *client, out []byte, args [][]byte) []byte {
	return redcon.AppendError(out, "NOPROTO quorumkv speaks RESP2 only; go on without HELLO")
}

// SELECT 0 is accepted; quorumkv has one keyspace.
func cmdSelect(c *client, out []byte, args [][]byte) []byte {
	n, err := strconv.Atoi(string(args[1]))
	switch {
	case err != nil:
		return redcon.AppendError(out, "ERR value is not an integer or out of range")
	case n != 0:
		return redcon.AppendError(out, "ERR DB index is out of range (quorumkv has one keyspace, database 0)")
	}
	return redcon.AppendOK(out)
}

// CLIENT SETNAME|GETNAME|ID|INFO|SETINFO|HELP.
func cmdClient(c *client, out []byte, args [][]byte) []byte {
	sub := strings.ToLower(string(args[1]))
	switch {
	case sub == "setname" && len(args) == 3:
		if bytes.ContainsFunc(args[2], func(r rune) bool { return r <= ' ' || r > '~' }) {
			return redcon.AppendError(out, "ERR Client names cannot contain spaces, newlines or special characters.")
		}
		c.name = string(args[2])
		return redcon.AppendOK(out)
	case sub == "getname" && len(args) == 2:
		if c.name == "" {
			return redcon.AppendNull(out)
		}
		return redcon.AppendBulkString(out, c.name)
	case sub == "id" && len(args) == 2:
		return redcon.AppendInt(out, c.id)
	case sub == "info" && len(args) == 2:
		return redcon.AppendBulkString(out, c.infoLine()+"\n")
	case sub == "setinfo" && len(args) == 4:
		if strings.EqualFold(string(args[2]), "lib-name") {
			c.lib = string(args[3])
		}
		return redcon.AppendOK(out)
	case sub == "help":
		return appendLines(out, []string{
			"CLIENT <subcommand> [<arg> ...]. Subcommands are:",
			"GETNAME", "    Return the name of the current connection.",
			"ID", "    Return the ID of the current connection.",
			"INFO", "    Return information about the current connection.",
			"SETINFO <attr> <value>", "    Accepted and ignored but for LIB-NAME.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
		})
	case sub == "setname" || sub == "getname" || sub == "id" || sub == "info" || sub == "setinfo":
		return redcon.AppendError(out, "ERR wrong number of arguments for 'client|"+sub+"' command")
	}
	return redcon.AppendError(out, fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", clip(args[1], 64)))
}

func (c *client) infoLine() string {
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s db=0 resp=2 lib-name=%s consistency=%s",
		c.id, c.conn.RemoteAddr(), c.conn.LocalAddr(), c.name, c.lib, c.level)
}

// CONFIG GET pattern...: a few read-only parameters with the values that
// describe quorumkv to tools (redis-benchmark reads save and appendonly).
// CONFIG SET is refused: quorumkv is configured with its flags.
func cmdConfig(c *client, out []byte, args [][]byte) []byte {
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "get":
		if len(args) < 3 {
			return appendArityError(out, "config|get")
		}
		params := [][2]string{
			{"save", ""},
			{"appendonly", "no"},
			{"databases", "1"},
			{"maxclients", strconv.Itoa(c.s.cfg.MaxConns)},
			{"timeout", "0"},
			{"proto-max-bulk-len", strconv.Itoa(c.s.cfg.MaxCommandBytes)},
			{"cluster-enabled", "no"},
		}
		var found []string
		for _, p := range params {
			for _, pat := range args[2:] {
				if ok, _ := path.Match(strings.ToLower(string(pat)), p[0]); ok {
					found = append(found, p[0], p[1])
					break
				}
			}
		}
		out = redcon.AppendArray(out, len(found))
		for _, f := range found {
			out = redcon.AppendBulkString(out, f)
		}
		return out
	case "set":
		return redcon.AppendError(out, "ERR CONFIG SET is not supported; quorumkv is configured with its command-line flags")
	case "resetstat":
		return redcon.AppendOK(out)
	}
	return redcon.AppendError(out, fmt.Sprintf("ERR unknown subcommand '%s'. Try CONFIG GET.", clip(args[1], 64)))
}

// COMMAND [COUNT|LIST|INFO name...|DOCS [name...]]: the command table in the
// Redis 6 shape (seven fields per command), which every client parses.
func cmdCommand(c *client, out []byte, args [][]byte) []byte {
	if len(args) == 1 {
		names := commandNames()
		out = redcon.AppendArray(out, len(names))
		for _, n := range names {
			out = appendCommandInfo(out, commands[n])
		}
		return out
	}
	switch strings.ToLower(string(args[1])) {
	case "count":
		return redcon.AppendInt(out, int64(len(commands)))
	case "list":
		names := commandNames()
		out = redcon.AppendArray(out, len(names))
		for _, n := range names {
			out = redcon.AppendBulkString(out, n)
		}
		return out
	case "info":
		out = redcon.AppendArray(out, len(args)-2)
		for _, a := range args[2:] {
			if sp := lookup(a); sp != nil {
				out = appendCommandInfo(out, sp)
			} else {
				out = redcon.AppendNull(out)
			}
		}
		return out
	case "docs":
		// No documentation: redis-cli falls back to its built-in hints.
		return redcon.AppendArray(out, 0)
	}
	return redcon.AppendError(out, fmt.Sprintf("ERR unknown subcommand '%s'. Try COMMAND INFO.", clip(args[1], 64)))
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func appendCommandInfo(out []byte, sp *spec) []byte {
	out = redcon.AppendArray(out, 7)
	out = redcon.AppendBulkString(out, sp.name)
	out = redcon.AppendInt(out, int64(sp.arity))
	out = redcon.AppendArray(out, len(sp.flags))
	for _, f := range sp.flags {
		out = redcon.AppendString(out, f)
	}
	out = redcon.AppendInt(out, int64(sp.firstKey))
	out = redcon.AppendInt(out, int64(sp.lastKey))
	out = redcon.AppendInt(out, int64(sp.step))
	out = redcon.AppendArray(out, len(sp.acl))
	for _, a := range sp.acl {
		out = redcon.AppendString(out, a)
	}
	return out
}

// INFO [section...]: server, clients, persistence, stats, replication,
// keyspace and quorumkv sections in Redis's format.
func cmdInfo(c *client, out []byte, args [][]byte) []byte {
	s := c.s
	want := func(name string) bool {
		if len(args) == 1 {
			return true
		}
		for _, a := range args[1:] {
			if l := strings.ToLower(string(a)); l == name || l == "all" || l == "everything" || l == "default" {
				return true
			}
		}
		return false
	}
	var b strings.Builder
	section := func(name string, lines ...string) {
		if !want(strings.ToLower(name)) {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	_, port, _ := net.SplitHostPort(s.Addr())
	up := time.Since(s.start)
	section("Server",
		"redis_version:"+redisVersion,
		"redis_mode:standalone",
		"server_name:quorumkv",
		"os:"+runtime.GOOS,
		"arch_bits:64",
		"go_version:"+runtime.Version(),
		"tcp_port:"+port,
		"uptime_in_seconds:"+strconv.Itoa(int(up.Seconds())),
		"uptime_in_days:"+strconv.Itoa(int(up.Hours()/24)))
	section("Clients",
		"connected_clients:"+strconv.FormatInt(s.open.Load(), 10),
		"maxclients:"+strconv.Itoa(s.cfg.MaxConns))
	section("Persistence", "loading:0")
	section("Stats",
		"total_connections_received:"+strconv.FormatInt(s.accepted.Load(), 10),
		"total_commands_processed:"+strconv.FormatInt(s.commandsRun.Load(), 10),
		"rejected_connections:"+strconv.FormatInt(s.rejected.Load(), 10))
	section("Replication", "role:master", "connected_slaves:0")
	section("Keyspace")
	section("Quorumkv",
		"default_consistency:"+s.cfg.DefaultLevel.String(),
		"connection_consistency:"+c.level.String())
	return redcon.AppendBulkString(out, b.String())
}

func appendLines(out []byte, lines []string) []byte {
	out = redcon.AppendArray(out, len(lines))
	for _, l := range lines {
		out = redcon.AppendString(out, l)
	}
	return out
}
