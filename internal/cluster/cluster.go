// Package cluster runs the production shape of Temporal on this machine
// without Docker: PostgreSQL 15 in a data directory, the schemas set up
// idempotently by Temporal's SQL tool, and two Temporal server processes
// (server 1.29.1, the release the dev server embeds) that form one cluster
// through ringpop membership on loopback, with PostgreSQL for persistence
// and visibility. `make stack` and `make test-cluster` use it.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// PostgresBin is where Debian's postgresql-15 package puts its programs.
const PostgresBin = "/usr/lib/postgresql/15/bin"

// Shards is the history shard count; it is fixed when the database is created.
const Shards = 8

// Options configure Start.
type Options struct {
	// Dir holds PostgreSQL's data, the nodes' configs and the logs; a second
	// Start on the same Dir resumes on the same data.
	Dir string
	// Server, SQLTool and CLI are the temporal-server, temporal-sql-tool and
	// temporal binaries; SchemaDir is the server module's schema/postgresql/v12.
	Server, SQLTool, CLI, SchemaDir string
	// DynamicConfig is the dynamic config file (deploy/dynamicconfig/mktos2s.yaml).
	DynamicConfig string
	// RegisterSearchAttributes is the script that registers them
	// (deploy/register-search-attributes.sh), run with TEMPORAL_ADDRESS.
	RegisterSearchAttributes string
	Namespace                string
	// FirstPort is where the nodes' ports are looked for (below 32768);
	// 0 = 21400. Another range keeps two stacks on one machine apart.
	FirstPort int
	// Log receives progress lines; nil = discarded.
	Log io.Writer
}

// Cluster is a running PostgreSQL and two Temporal server nodes.
type Cluster struct {
	o     Options
	pg    *Postgres
	Nodes []*Node
	// nextLow is where freeLowPort looks next; ports are handed out once.
	nextLow int
}

// Start brings PostgreSQL, the schemas, both nodes, the namespace and the
// search attributes up.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	for _, d := range []string{o.Dir, filepath.Join(o.Dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	c = &Cluster{o: o, nextLow: o.FirstPort}
	if c.nextLow == 0 {
		c.nextLow = 21400
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.pg, err = StartPostgres(ctx, filepath.Join(o.Dir, "pg"), filepath.Join(o.Dir, "logs", "postgresql.log")); err != nil {
		return c, err
	}
	fmt.Fprintf(o.Log, "PostgreSQL 15 on 127.0.0.1:%d (data %s)\n", c.pg.Port, c.pg.Dir)
	if err := c.setupSchemas(ctx); err != nil {
		return c, err
	}
	for i := 1; i <= 2; i++ {
		n, err := c.newNode(i)
		if err != nil {
			return c, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	// Node 1's frontend is the cluster's rpcAddress in both configs.
	for _, n := range c.Nodes {
		if err := n.writeConfig(c.Nodes[0].Ports.Frontend); err != nil {
			return c, err
		}
	}
	// One after the other: on an empty database both nodes would write the
	// cluster metadata at once, and the loser exits (duplicate key on
	// cluster_metadata_info).
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			return c, err
		}
		if err := c.waitHealthy(ctx, n.Frontend(), 90*time.Second); err != nil {
			return c, fmt.Errorf("node %d: %w (log %s)", n.Index, err, n.logPath)
		}
		fmt.Fprintf(o.Log, "Temporal server node %d (pid %d): frontend %s, history %d, matching %d, worker %d, membership %d-%d\n",
			n.Index, n.Pid(), n.Frontend(), n.Ports.History, n.Ports.Matching, n.Ports.Worker, n.Ports.FrontendMembership, n.Ports.WorkerMembership)
	}
	if err := c.ensureNamespace(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// Resume starts PostgreSQL and both nodes again after Stop, on the same
// ports and data, and waits until both frontends serve.
func (c *Cluster) Resume(ctx context.Context) error {
	if err := c.pg.Start(ctx); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	for _, n := range c.Nodes {
		if err := c.WaitHealthy(ctx, n); err != nil {
			return fmt.Errorf("node %d: %w (log %s)", n.Index, err, n.logPath)
		}
	}
	return nil
}

// Member is one row of Temporal's cluster_membership table: a service of a
// node that heartbeats into PostgreSQL, which is how the nodes find each
// other's ringpop ports.
type Member struct {
	Role                string // frontend, history, matching, worker
	Address             string // rpc_address:rpc_port (the membership port)
	SessionStart, Alive string // session_start, last_heartbeat (UTC)
}

// roleNames are the role numbers of cluster_membership (the server's
// persistence.ServiceType).
var roleNames = map[string]string{"1": "frontend", "2": "history", "3": "matching", "4": "worker"}

// Members lists the services that heartbeat within the last 30 seconds (a
// killed node's rows stay until they expire), by role and address, with
// the start of each one's newest session.
func (c *Cluster) Members(ctx context.Context) ([]Member, error) {
	// The newest session per address: a restarted node's earlier session
	// heartbeat moments ago too.
	const q = `SELECT DISTINCT ON (role, rpc_address, rpc_port) role, rpc_address || ':' || rpc_port, to_char(session_start, 'HH24:MI:SS'), to_char(last_heartbeat, 'HH24:MI:SS')
FROM cluster_membership WHERE last_heartbeat > now() AT TIME ZONE 'UTC' - interval '30 seconds' ORDER BY role, rpc_address, rpc_port, session_start DESC`
	out, err := c.pg.Query(ctx, "temporal", q)
	if err != nil {
		return nil, err
	}
	var ms []Member
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, "|")
		if len(f) != 4 {
			continue
		}
		ms = append(ms, Member{Role: roleNames[f[0]], Address: f[1], SessionStart: f[2], Alive: f[3]})
	}
	return ms, nil
}

// Frontend is node 1's frontend, host:port.
func (c *Cluster) Frontend() string { return c.Nodes[0].Frontend() }

// Frontends are both nodes' frontends, for clients that fail over.
func (c *Cluster) Frontends() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Frontend())
	}
	return out
}

// Postgres is the cluster's database server.
func (c *Cluster) Postgres() *Postgres { return c.pg }

// Stop stops both nodes, then PostgreSQL.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
	if c.pg != nil {
		c.pg.Stop()
	}
}

func (c *Cluster) sqlTool(ctx context.Context, db string, args ...string) ([]byte, error) {
	base := []string{"--plugin", "postgres12", "--ep", "127.0.0.1", "-p", strconv.Itoa(c.pg.Port), "-u", "temporal", "--db", db}
	cmd := exec.CommandContext(ctx, c.o.SQLTool, append(base, args...)...)
	return cmd.CombinedOutput()
}

// setupSchemas creates both databases and brings their schemas to the
// server's version; every step is a no-op when already done.
func (c *Cluster) setupSchemas(ctx context.Context) error {
	for _, s := range []struct{ db, dir string }{{"temporal", "temporal"}, {"temporal_visibility", "visibility"}} {
		if out, err := c.sqlTool(ctx, s.db, "create-database"); err != nil && !bytes.Contains(out, []byte("already exists")) {
			return fmt.Errorf("create database %s: %w: %s", s.db, err, out)
		}
		if out, err := c.sqlTool(ctx, s.db, "setup-schema", "-v", "0.0"); err != nil && !bytes.Contains(out, []byte("already exists")) {
			return fmt.Errorf("setup schema %s: %w: %s", s.db, err, out)
		}
		dir := filepath.Join(c.o.SchemaDir, s.dir, "versioned")
		if out, err := c.sqlTool(ctx, s.db, "update-schema", "-d", dir); err != nil {
			return fmt.Errorf("update schema %s from %s: %w: %s", s.db, dir, err, out)
		}
	}
	fmt.Fprintf(c.o.Log, "schemas temporal and temporal_visibility up to date (%s)\n", c.o.SchemaDir)
	return nil
}

func (c *Cluster) cli(ctx context.Context, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, c.o.CLI, args...).CombinedOutput()
}

func (c *Cluster) waitHealthy(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := c.cli(ctx, "operator", "cluster", "health", "--address", addr)
		if err == nil && bytes.Contains(out, []byte("SERVING")) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("frontend %s not serving after %s: %v %s", addr, timeout, err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// WaitHealthy waits until node i's frontend serves.
func (c *Cluster) WaitHealthy(ctx context.Context, n *Node) error {
	return c.waitHealthy(ctx, n.Frontend(), 90*time.Second)
}

// ensureNamespace creates the namespace (once) and registers the search
// attributes with the same script docker-compose runs.
func (c *Cluster) ensureNamespace(ctx context.Context) error {
	addr := c.Frontend()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := c.cli(ctx, "operator", "namespace", "create", "--namespace", c.o.Namespace, "--address", addr, "--retention", "72h")
		if err == nil || bytes.Contains(out, []byte("already")) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("create namespace %s: %w: %s", c.o.Namespace, err, out)
		}
		time.Sleep(time.Second)
	}
	// The namespace cache of every frontend refreshes within seconds.
	deadline = time.Now().Add(60 * time.Second)
	for {
		cmd := exec.CommandContext(ctx, "sh", c.o.RegisterSearchAttributes)
		cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+addr, "TEMPORAL_NAMESPACE="+c.o.Namespace,
			"PATH="+filepath.Dir(c.o.CLI)+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err == nil {
			fmt.Fprintf(c.o.Log, "namespace %s with its search attributes (%s):\n%s", c.o.Namespace, filepath.Base(c.o.RegisterSearchAttributes), indent(out))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("register search attributes: %w: %s", err, out)
		}
		time.Sleep(time.Second)
	}
}

func indent(b []byte) string {
	var sb strings.Builder
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		sb.WriteString("  " + l + "\n")
	}
	return sb.String()
}

// FreePort is a free loopback TCP port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// freeLowPort is a free loopback port below 32768: Temporal keeps
// membership ports in a PostgreSQL smallint, so the kernel's ephemeral
// ports (above 32768) make a node fail to join.
func (c *Cluster) freeLowPort() (int, error) {
	for ; c.nextLow < 32000; c.nextLow++ {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(c.nextLow))
		if err != nil {
			continue
		}
		ln.Close()
		c.nextLow++
		return c.nextLow - 1, nil
	}
	return 0, errors.New("no free loopback port below 32000")
}

// Postgres is a PostgreSQL server in its own data directory.
type Postgres struct {
	Dir, log string
	Port     int
}

// asPostgres runs a PostgreSQL program: as root through runuser as the
// unprivileged postgres user (PostgreSQL refuses to run as root).
func asPostgres(name string, args ...string) *exec.Cmd {
	return asPostgresContext(context.Background(), name, args...)
}

// asPostgresContext is asPostgres for a command that must end with ctx (a
// query); pg_ctl start and stop are not, since the server they start
// outlives them by design.
func asPostgresContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	bin := filepath.Join(PostgresBin, name)
	if os.Geteuid() == 0 {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	return exec.CommandContext(ctx, bin, args...)
}

func chownPostgres(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("no postgres user to run PostgreSQL as (apt-get install -y postgresql): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

// StartPostgres initialises dir once (trust auth on loopback only, user
// temporal) and starts PostgreSQL on a free port.
func StartPostgres(ctx context.Context, dir, logFile string) (*Postgres, error) {
	p := &Postgres{Dir: dir, log: logFile}
	// The directories above the data directory must let the postgres user
	// through; only the data directory itself is private to it.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if err := postgresCanReach(dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := chownPostgres(dir); err != nil {
			return nil, err
		}
		if out, err := asPostgres("initdb", "-D", dir, "-A", "trust", "-U", "temporal").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("initdb %s: %w: %s", dir, err, out)
		}
	}
	if f, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o666); err == nil {
		f.Close()
		_ = chownPostgres(logFile)
	}
	return p, p.Start(ctx)
}

// Start starts the server (again) on a free port, or on the port it had.
func (p *Postgres) Start(ctx context.Context) error {
	if p.Port == 0 {
		port, err := FreePort()
		if err != nil {
			return err
		}
		p.Port = port
	}
	// A postmaster.pid left by a killed server would block the start.
	if b, err := os.ReadFile(filepath.Join(p.Dir, "postmaster.pid")); err == nil {
		if pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0]); pid > 0 && syscall.Kill(pid, 0) != nil {
			_ = os.Remove(filepath.Join(p.Dir, "postmaster.pid"))
		}
	}
	out, err := asPostgres("pg_ctl", "-D", p.Dir, "-l", p.log, "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=300", p.Port, p.Dir), "start").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s (log %s)", err, out, p.log)
	}
	return nil
}

// Stop stops the server (fast shutdown: open transactions are rolled back).
func (p *Postgres) Stop() {
	_ = asPostgres("pg_ctl", "-D", p.Dir, "-m", "fast", "-w", "stop").Run()
}

// Restart stops and starts it on the same port.
func (p *Postgres) Restart(ctx context.Context) error {
	p.Stop()
	return p.Start(ctx)
}

// Dump is pg_dump of a database, as text.
func (p *Postgres) Dump(ctx context.Context, db string) ([]byte, error) {
	cmd := asPostgres("pg_dump", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "temporal", db)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pg_dump %s: %w: %s", db, err, errb.String())
	}
	return out.Bytes(), nil
}

// Query runs one SQL statement with psql and returns its rows, unaligned,
// fields separated by |.
func (p *Postgres) Query(ctx context.Context, db, sql string) ([]byte, error) {
	cmd := asPostgresContext(ctx, "psql", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "temporal", "-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("psql %s: %w: %s", db, err, errb.String())
	}
	return out.Bytes(), nil
}

// Ports of one node's services.
type Ports struct {
	Frontend, FrontendHTTP, History, Matching, Worker                           int
	FrontendMembership, HistoryMembership, MatchingMembership, WorkerMembership int
	Metrics, Pprof                                                              int
}

// Node is one Temporal server process running every service.
type Node struct {
	Index   int
	Ports   Ports
	dir     string
	logPath string
	o       Options
	pgPort  int
	cmd     *exec.Cmd
	done    chan struct{}
}

func (c *Cluster) newNode(i int) (*Node, error) {
	o := c.o
	n := &Node{Index: i, o: o, pgPort: c.pg.Port, dir: filepath.Join(o.Dir, fmt.Sprintf("node%d", i)),
		logPath: filepath.Join(o.Dir, "logs", fmt.Sprintf("temporal-node%d.log", i))}
	ports := make([]int, 11)
	for k := range ports {
		p, err := c.freeLowPort()
		if err != nil {
			return nil, err
		}
		ports[k] = p
	}
	n.Ports = Ports{ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6], ports[7], ports[8], ports[9], ports[10]}
	return n, nil
}

// Frontend is the node's frontend host:port.
func (n *Node) Frontend() string { return "127.0.0.1:" + strconv.Itoa(n.Ports.Frontend) }

// Pid is the process ID, 0 when not running.
func (n *Node) Pid() int {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// LogFile is where the node writes.
func (n *Node) LogFile() string { return n.logPath }

var configTemplate = template.Must(template.New("config").Parse(`log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: {{.Shards}}
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "127.0.0.1:{{.PG}}"
        connectProtocol: tcp
        user: temporal
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "127.0.0.1:{{.PG}}"
        connectProtocol: tcp
        user: temporal
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  pprof:
    port: {{.P.Pprof}}
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "127.0.0.1:{{.P.Metrics}}"
services:
  frontend:
    rpc:
      grpcPort: {{.P.Frontend}}
      membershipPort: {{.P.FrontendMembership}}
      bindOnLocalHost: true
      httpPort: {{.P.FrontendHTTP}}
  history:
    rpc:
      grpcPort: {{.P.History}}
      membershipPort: {{.P.HistoryMembership}}
      bindOnLocalHost: true
  matching:
    rpc:
      grpcPort: {{.P.Matching}}
      membershipPort: {{.P.MatchingMembership}}
      bindOnLocalHost: true
  worker:
    rpc:
      grpcPort: {{.P.Worker}}
      membershipPort: {{.P.WorkerMembership}}
      bindOnLocalHost: true
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "{{.Cluster}}"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: "{{.Dynamic}}"
  pollInterval: 10s
`))

func (n *Node) writeConfig(clusterFrontend int) error {
	dir := filepath.Join(n.dir, "config")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dyn, err := filepath.Abs(n.o.DynamicConfig)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, map[string]any{
		"Shards": Shards, "PG": n.pgPort, "P": n.Ports, "Cluster": "127.0.0.1:" + strconv.Itoa(clusterFrontend), "Dynamic": dyn,
	}); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "development.yaml"), b.Bytes(), 0o644)
}

// Start starts the node's process (again, on the same ports).
func (n *Node) Start() error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.o.Server, "--root", n.dir, "--config", "config", "--env", "development", "--allow-no-auth", "start")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start node %d: %w", n.Index, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); logf.Close(); close(done) }(n.done)
	return nil
}

// Kill SIGKILLs the node.
func (n *Node) Kill() error {
	if n.Pid() == 0 {
		return errors.New("node not running")
	}
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-n.done
	n.cmd = nil
	return nil
}

// Stop stops the node gracefully (SIGTERM, then SIGKILL after 20 s).
func (n *Node) Stop() {
	if n.Pid() == 0 {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
	}
	n.cmd = nil
}
