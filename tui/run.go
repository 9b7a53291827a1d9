package tui

import (
	"context"
	"errors"
	"io"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// Run shows the dashboard of src on the terminal (in, out) until the user
// quits or ctx ends (a signal, the provider's end): both are a clean end.
func Run(ctx context.Context, in io.Reader, out io.Writer, src Source, interval time.Duration) error {
	m := New(src, Options{Interval: interval, Renderer: lipgloss.NewRenderer(out), NoColor: NoColorEnv()})
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out))
	_, err := p.Run()
	switch {
	case errors.Is(err, tea.ErrInterrupted):
		return nil // SIGINT: as q
	case errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil:
		return nil // SIGTERM, SIGHUP, or the end of the provider
	}
	return err
}
