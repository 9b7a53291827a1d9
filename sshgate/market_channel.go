package sshgate

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	"github.com/libp2p/go-libp2p/core/peer"
	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/p2p"
)

// ChannelMarket answers where the provider's libp2p market node is: one
// request and one answer per channel, each a line of JSON. It is how a
// renter given --seed HOST:PORT, or a provider given --peer HOST:PORT,
// joins the market (docs/market.md): the market itself runs on libp2p.
const ChannelMarket = "zennet-market-v1@zennet"

// marketMsg is a request ({"type":"market"}) or an answer on the market
// channel.
type marketMsg struct {
	Type    string `json:"type"` // market, error
	Message string `json:"message,omitempty"`
	// Market are the answering provider's libp2p market multiaddrs.
	Market []string `json:"market,omitempty"`
}

// maxMarketMessage bounds a request or an answer.
const maxMarketMessage = 64 << 10

// marketChannel is the gateway's handler of ChannelMarket.
func (g *Gateway) marketChannel(_ *ssh.Server, _ *gossh.ServerConn, nc gossh.NewChannel, _ ssh.Context) {
	if g.market == nil {
		nc.Reject(gossh.UnknownChannelType, "this provider is not on the libp2p market")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go gossh.DiscardRequests(reqs)
	// A request that does not come in time closes the channel.
	t := time.AfterFunc(sniffTimeout, func() { ch.Close() })
	defer t.Stop()
	serveMarket(g.market, ch)
}

// serveMarket answers one request of a market channel with the
// provider's market multiaddrs.
func serveMarket(addrs func() []string, ch io.ReadWriter) {
	line, err := readLine(bufio.NewReaderSize(ch, 4<<10), maxMarketMessage)
	if err != nil {
		return
	}
	var req marketMsg
	switch err := json.Unmarshal(line, &req); {
	case err != nil:
		writeMarket(ch, marketMsg{Type: "error", Message: "malformed request: " + err.Error()})
	case req.Type != "market":
		writeMarket(ch, marketMsg{Type: "error", Message: fmt.Sprintf("unknown request %q (the market runs on libp2p: ask for \"market\")", req.Type)})
	default:
		if a := addrs(); len(a) == 0 {
			writeMarket(ch, marketMsg{Type: "error", Message: "this provider's market node has no address"})
		} else {
			writeMarket(ch, marketMsg{Type: "market", Market: a})
		}
	}
}

// ErrNoMarket is returned by FetchMarket from a provider that is not on
// the libp2p market (an older one).
var ErrNoMarket = errors.New("the provider is not on the libp2p market")

// FetchMarket asks the provider at addr (HOST:PORT) for its libp2p market
// node's multiaddrs, within ctx.
func FetchMarket(ctx context.Context, addr string, signer gossh.Signer) ([]string, error) {
	c, err := dialConn(ctx, addr, nil, signer, nil, 10*time.Second)
	if err != nil {
		if !errors.Is(err, ErrUnreachable) {
			err = fmt.Errorf("ssh handshake with %s: %w", addr, err)
		}
		return nil, err
	}
	defer func() { go c.Close() }()
	ch, creqs, err := c.openChannel(ctx, ChannelMarket, nil)
	var oce *gossh.OpenChannelError
	if errors.As(err, &oce) {
		return nil, fmt.Errorf("%w: %s: %s", ErrNoMarket, addr, oce.Message)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	// The channel is open: closing the connection ends its reads and
	// writes, so it is all a stalled answer needs.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	go gossh.DiscardRequests(creqs)
	defer ch.Close()
	fail := func(err error) ([]string, error) {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	if err := writeMarket(ch, marketMsg{Type: "market"}); err != nil {
		return fail(err)
	}
	line, err := readLine(bufio.NewReaderSize(ch, 4<<10), maxMarketMessage)
	if err != nil {
		return fail(err)
	}
	var ans marketMsg
	if err := json.Unmarshal(line, &ans); err != nil {
		return nil, fmt.Errorf("%s: malformed answer: %w", addr, err)
	}
	if ans.Type != "market" || len(ans.Market) == 0 {
		return nil, fmt.Errorf("%w: %s answered %q %s", ErrNoMarket, addr, ans.Type, ans.Message)
	}
	return ans.Market, nil
}

// MarketPeers asks the providers at addrs (HOST:PORT), all at once within
// ctx, where their market nodes are: what a HOST:PORT --seed or --peer
// stands for on the libp2p market. It returns the nodes and, for each
// provider that gave none, why.
func MarketPeers(ctx context.Context, addrs []string, signer gossh.Signer) ([]peer.AddrInfo, []error) {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		peers []peer.AddrInfo
		errs  []error
	)
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ma, err := FetchMarket(ctx, addr, signer)
			var infos []peer.AddrInfo
			if err == nil {
				infos, err = p2p.ParsePeers(ma)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: its market node: %w", addr, err))
				return
			}
			peers = append(peers, infos...)
		}()
	}
	wg.Wait()
	return peers, errs
}

func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, fmt.Errorf("message exceeds %d bytes", limit)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return line, nil
	}
}

func writeMarket(w io.Writer, m marketMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
