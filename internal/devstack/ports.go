package devstack

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// checkPorts refuses to start when a fixed port the stack needs is taken,
// before anything starts or any file is written: a taken Temporal port
// would otherwise be served by another stack's dev server, which the
// worker would then join, and the emulator would already have replaced
// microsoft.caFile. Port 0 (any free port) needs no check.
func checkPorts(o StackOptions) error {
	type need struct{ addr, what string }
	var needs []need
	if o.TemporalPort > 0 {
		needs = append(needs, need{net.JoinHostPort("127.0.0.1", strconv.Itoa(o.TemporalPort)), "the Temporal frontend (--temporal-port, temporal.address)"})
	}
	if o.UI && o.UIPort > 0 {
		needs = append(needs, need{net.JoinHostPort("127.0.0.1", strconv.Itoa(o.UIPort)), "the Temporal UI (--ui-port, codecServer.corsOrigin)"})
	}
	for _, n := range []need{
		{o.EmulatorAddr, "the emulator (--emulator-addr, microsoft.authorityHost)"},
		{o.CodecListen, "the codec endpoint (--codec-listen, codecServer.listen)"},
		{o.CallbackListen, "the consent callback (--callback-listen, consent.callbackListen)"},
	} {
		if _, port, err := net.SplitHostPort(n.addr); err == nil && port != "0" {
			needs = append(needs, n)
		}
	}
	var errs []error
	for _, n := range needs {
		ln, err := net.Listen("tcp", n.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s cannot listen on %s: %w; stop what uses it (another devstack?) or pick another port (0 = any free port)", n.what, n.addr, err))
			continue
		}
		_ = ln.Close()
	}
	if len(errs) > 0 {
		return fmt.Errorf("stack: nothing was started and no file written: %w", errors.Join(errs...))
	}
	return nil
}
