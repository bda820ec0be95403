package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/mktos2s/mktos2s/workflows"
)

// BuildWorker compiles the worker command (./worker of this module) into
// dir and returns the binary's path.
func BuildWorker(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("testenv: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("testenv: not inside the mktos2s module")
	}
	bin := filepath.Join(dir, "worker")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./worker")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testenv: go build ./worker: %w: %s", err, b)
	}
	return bin, nil
}

// Process is a worker subprocess.
type Process struct {
	cmd  *exec.Cmd
	out  Buffer
	done chan struct{}
	err  error // set before done is closed
}

// StartWorkerProcess runs the worker binary against this environment, with
// its configuration in MKTOS2S_* variables only: it runs in an empty
// directory with its own HOME, so no mktos2s.yaml is found, and it does not
// inherit the test's MKTOS2S_* variables. It returns once the process polls
// both the workflow and the activity task queue of namespace.
func (e *Env) StartWorkerProcess(ctx context.Context, bin, namespace string) (*Process, error) {
	home, err := os.MkdirTemp(e.dir, "worker-")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	p := &Process{done: make(chan struct{})}
	// Deliberately not exec.CommandContext: the tests decide how it ends (SIGKILL or SIGTERM).
	p.cmd = exec.Command(bin)
	p.cmd.Dir = home
	p.cmd.Env = append([]string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}, e.Environ(namespace)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("testenv: start worker: %w", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := e.waitPolling(ctx, namespace, p); err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("%w\nworker output:\n%s", err, p.Output())
	}
	return p, nil
}

// waitPolling waits until a poller whose identity carries p's PID (the SDK's
// default identity is "<pid>@<host>@") polls both task queue types.
func (e *Env) waitPolling(ctx context.Context, namespace string, p *Process) error {
	prefix := strconv.Itoa(p.PID()) + "@"
	svc := e.Dev.Client().WorkflowService()
	return Poll(ctx, 30*time.Second, func() error {
		select {
		case <-p.done:
			return stop{fmt.Errorf("testenv: worker exited: %v", p.err)}
		default:
		}
		for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
			resp, err := svc.DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
				Namespace:     namespace,
				TaskQueue:     &taskqueuepb.TaskQueue{Name: workflows.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
				TaskQueueType: typ,
			})
			if err != nil {
				return err
			}
			found := false
			for _, pi := range resp.GetPollers() {
				found = found || strings.HasPrefix(pi.GetIdentity(), prefix)
			}
			if !found {
				return fmt.Errorf("testenv: worker pid %d not polling the %s task queue yet", p.PID(), typ)
			}
		}
		return nil
	})
}

// PID is the worker's process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Output is what the worker wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Kill ends the worker with SIGKILL, as a crash would: no activity gets to
// finish or report, and waits for it to be gone.
func (p *Process) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testenv: kill worker %d: %w", p.PID(), err)
	}
	<-p.done
	return nil
}

// Stop asks the worker to shut down gracefully (SIGTERM) and waits up to
// timeout; then it kills it. It returns the worker's exit error, if any.
func (p *Process) Stop(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testenv: stop worker %d: %w", p.PID(), err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.Kill()
		return fmt.Errorf("testenv: worker %d did not stop within %s after SIGTERM", p.PID(), timeout)
	}
}

// Buffer is a bytes.Buffer that goroutines may write while another reads
// it: the output of a subprocess, or of a command running in the background.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(b)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Freeze stops the worker with SIGSTOP. Its connections stay open, so a
// server still completes a request the worker sent and writes the answer
// into a socket nobody reads: Kill afterwards loses that answer for sure,
// which is the crash an idempotent activity must survive.
func (p *Process) Freeze() error {
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("testenv: freeze worker %d: %w", p.PID(), err)
	}
	return nil
}
