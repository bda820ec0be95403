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
answers browsers only from codecServer.corsOrigin, the UI's origin.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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

// serveUntilDone serves h on ln until ctx is done, then shuts down gracefully.
func serveUntilDone(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
