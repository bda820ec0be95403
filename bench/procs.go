package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/emulator"
)

// child is a subprocess whose CPU and memory the benchmark measures.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
	log  *os.File
}

// startChild runs bin with args and env in dir; its output goes to
// <logDir>/<name>.log. readyLine, when not empty, is a line the child prints
// on stdout once it serves; startChild waits for it.
func startChild(ctx context.Context, name, logDir, dir, bin string, args, env []string, readyLine string) (*child, error) {
	lf, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	c := &child{name: name, done: make(chan struct{}), log: lf}
	// Not CommandContext: Stop ends it with SIGTERM so that it can shut down cleanly.
	c.cmd = exec.Command(bin, args...)
	c.cmd.Dir, c.cmd.Env, c.cmd.Stderr = dir, env, lf
	var ready chan error
	if readyLine == "" {
		c.cmd.Stdout = lf
	} else {
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			lf.Close()
			return nil, err
		}
		ready = make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				fmt.Fprintln(lf, sc.Text())
				if sc.Text() == readyLine {
					ready <- nil
					_, _ = io.Copy(lf, out)
					return
				}
			}
			ready <- fmt.Errorf("bench: %s ended its output before %q (see %s)", name, readyLine, lf.Name())
		}()
	}
	if err := c.cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	if ready == nil {
		return c, nil
	}
	select {
	case err := <-ready:
		if err != nil {
			c.stop()
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		c.stop()
		return nil, fmt.Errorf("bench: %s not ready after 2m (see %s)", name, lf.Name())
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM, waits up to 20s, then kills.
func (c *child) stop() {
	defer c.log.Close()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// waitPolling waits until a poller of c (the SDK's default identity starts
// with "<pid>@") polls both the workflow and the activity task queue.
func waitPolling(ctx context.Context, tc client.Client, namespace, taskQueue string, c *child) error {
	prefix := strconv.Itoa(c.pid()) + "@"
	deadline := time.Now().Add(time.Minute)
	for {
		ok := true
		for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
			resp, err := tc.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
				Namespace:     namespace,
				TaskQueue:     &taskqueuepb.TaskQueue{Name: taskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
				TaskQueueType: typ,
			})
			if err != nil {
				return fmt.Errorf("bench: describe task queue %s: %w", taskQueue, err)
			}
			found := false
			for _, p := range resp.GetPollers() {
				found = found || strings.HasPrefix(p.GetIdentity(), prefix)
			}
			ok = ok && found
		}
		if ok {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("bench: %s exited: %v (see %s)", c.name, c.err, c.log.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s does not poll %s after 1m (see %s)", c.name, taskQueue, c.log.Name())
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readyLine is what a role subprocess prints when it serves.
const readyLine = "bench: ready"

// runEmulatorRole serves the emulator with benchSeed(from, tenants) until
// SIGTERM. It runs in its own process so that its CPU time is measured apart.
func runEmulatorRole(addr, dataDir string, from, tenants int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	seed, err := benchSeed(from, tenants)
	if err != nil {
		return err
	}
	emu, err := emulator.Start(ctx, emulator.Options{Addr: addr, DataDir: dataDir, Seed: seed})
	if err != nil {
		return err
	}
	fmt.Println(readyLine)
	<-ctx.Done()
	if err := emu.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// pidsByName lists the processes whose /proc/<pid>/comm is one of names:
// the Temporal server and PostgreSQL processes of an external stack. With
// match set, only those whose command line, or their parent's, contains it
// (a PostgreSQL backend's parent is the postmaster, whose command line
// names the data directory): another stack on the same machine is left out.
func pidsByName(names []string, match string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	cmdline := func(pid string) string {
		b, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		return strings.ReplaceAll(string(b), "\x00", " ")
	}
	parent := func(pid string) string {
		b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
		if err != nil {
			return ""
		}
		// pid (comm) state ppid …: comm may hold spaces, so cut after ")".
		_, rest, _ := strings.Cut(string(b), ") ")
		if f := strings.Fields(rest); len(f) > 1 {
			return f[1]
		}
		return ""
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue // gone meanwhile
		}
		if !slices.Contains(names, strings.TrimSpace(string(comm))) {
			continue
		}
		if match != "" && !strings.Contains(cmdline(e.Name()), match) && !strings.Contains(cmdline(parent(e.Name())), match) {
			continue
		}
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("bench: no process named %v (matching %q) runs: start the stack first (make stack)", names, match)
	}
	return pids, nil
}
