package fault

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// LabelKey marks every container, volume and network the suite creates, so
// that Cleanup can find leftovers of an earlier run that died.
const LabelKey = "io.quorumkv.fault"

// commandTimeout bounds every docker, nsenter and iptables call.
const commandTimeout = 60 * time.Second

// run runs a host command with a deadline and returns its trimmed standard
// output; a failure carries the command line and its standard error.
func run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func docker(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "", "docker", args...)
}

// Cleanup removes every container, volume and network carrying LabelKey.
// It is safe to call at any time and reports every problem it met.
func Cleanup(ctx context.Context) error {
	var errs []string
	ids, err := docker(ctx, "ps", "-aq", "--filter", "label="+LabelKey)
	if err != nil {
		errs = append(errs, err.Error())
	}
	if f := strings.Fields(ids); len(f) > 0 {
		// Paused containers cannot be removed until they are unpaused.
		for _, id := range f {
			_, _ = docker(ctx, "unpause", id)
		}
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, f...)...); err != nil {
			errs = append(errs, err.Error())
		}
	}
	vols, err := docker(ctx, "volume", "ls", "-q", "--filter", "label="+LabelKey)
	if err != nil {
		errs = append(errs, err.Error())
	}
	if f := strings.Fields(vols); len(f) > 0 {
		if _, err := docker(ctx, append([]string{"volume", "rm", "-f"}, f...)...); err != nil {
			errs = append(errs, err.Error())
		}
	}
	nets, err := docker(ctx, "network", "ls", "-q", "--filter", "label="+LabelKey)
	if err != nil {
		errs = append(errs, err.Error())
	}
	if f := strings.Fields(nets); len(f) > 0 {
		if _, err := docker(ctx, append([]string{"network", "rm"}, f...)...); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("fault: cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}
