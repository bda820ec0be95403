package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) codecServerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "codec-server",
		Short: "Serve the payload codec over HTTP for the Temporal UI (bearer token, one CORS origin)",
		Long: `codec-server decrypts and encrypts payloads for the Temporal UI and CLI
(POST /decode, /encode). It requires codecServer.token as a bearer token and
answers browsers only from codecServer.corsOrigin, the UI's origin. It holds
the codec key only: client secrets stay sealed with the custody key, so it
refuses to start when custody.keys is set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(a.cfg.Custody.Keys) > 0 {
				// It would not use it, but a process the UI talks to must not even have it.
				return errors.New("codec-server refuses to start with custody.keys set: the codec endpoint serves the Temporal UI, " +
					"which must never be able to open client secrets; run it without MKTOS2S_CUSTODY_KEYS (only the worker and `credentials --reveal` need it)")
			}
			h, err := codecHTTPHandler(a.cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", a.cfg.CodecServer.Listen)
			if err != nil {
				return fmt.Errorf("codec-server: %w", err)
			}
			fmt.Fprintf(out(cmd), "codec endpoint listening on http://%s (CORS origin %s)\n", ln.Addr(), a.cfg.CodecServer.CORSOrigin)
			return serveUntilDone(cmd.Context(), ln, h)
		},
	}
	cmd.Flags().String("listen", "", "host:port to listen on (codecServer.listen)")
	return cmd
}

// ServerTimeouts bound how long one client can hold a connection of the
// codec endpoint or the consent callback, both reachable from browsers: a
// client that sends its headers or body slowly, or reads the answer slowly,
// is cut off instead of holding a connection (and a goroutine) forever.
type ServerTimeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultServerTimeouts leave room for the callback's signal (10 s) and the
// codec's largest body, and nothing more.
func DefaultServerTimeouts() ServerTimeouts {
	return ServerTimeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 30 * time.Second, Idle: 60 * time.Second}
}

// NewServer is the http.Server of the product's own endpoints (codec,
// consent callback) with every timeout set.
func NewServer(h http.Handler, t ServerTimeouts) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle,
		MaxHeaderBytes: 32 << 10}
}

// serveUntilDone serves h on ln until ctx is done, then shuts down gracefully.
func serveUntilDone(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := NewServer(h, DefaultServerTimeouts())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
