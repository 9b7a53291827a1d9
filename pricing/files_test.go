package pricing

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zeros yields n zero bytes.
type zeros struct{ n int }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), z.n)
	clear(p[:k])
	z.n -= k
	return k, nil
}

func TestReadInput(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		wantErr bool
	}{
		{"empty", 0, false},
		{"small", 10, false},
		{"at the bound", MaxInput, false},
		{"over the bound", MaxInput + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ReadInput(&zeros{tt.size}, "in")
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "read in: larger than 64 MiB") {
					t.Errorf("error %v, want one saying the input is too large", err)
				}
				return
			}
			if err != nil || len(b) != tt.size {
				t.Errorf("read %d bytes, %v; want %d", len(b), err, tt.size)
			}
		})
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cal := filepath.Join(testdata, "calibration.json")
	model := filepath.Join(testdata, "model.json")
	notJSON := write("not.json", "{")
	missing := filepath.Join(dir, "missing.json")

	t.Run("calibration", func(t *testing.T) {
		c, err := ReadCalibrationFile(cal)
		if err != nil || len(c.Rows) == 0 {
			t.Fatalf("ReadCalibrationFile = %d rows, %v", len(c.Rows), err)
		}
		if _, err := ReadCalibrationFile(notJSON); !errors.Is(err, ErrCalibration) || !strings.HasPrefix(err.Error(), notJSON+": ") {
			t.Errorf("not JSON: %v; want ErrCalibration after the file's name", err)
		}
		if _, err := ReadCalibrationFile(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("missing: %v", err)
		}
	})
	t.Run("model", func(t *testing.T) {
		m, h, err := ReadModelFile(model)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := m.Hash(); h != want || h == "" {
			t.Errorf("hash %q, want the model's %q", h, want)
		}
		if _, _, err := ReadModelFile(cal); err == nil || !strings.HasPrefix(err.Error(), cal+": ") || !strings.Contains(err.Error(), "no version") {
			t.Errorf("a calibration read as a model: %v", err)
		}
		if _, _, err := ReadModelFile(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("missing: %v", err)
		}
	})
	t.Run("fit", func(t *testing.T) {
		m, err := FitFiles([]string{cal}, Prices{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := ReadCalibrationFile(cal)
		if len(m.Calibrations) != 1 || m.Calibrations[0] != c.ID() {
			t.Errorf("fitted from %v, want [%s]", m.Calibrations, c.ID())
		}
		if _, err := FitFiles([]string{cal, notJSON}, Prices{}, Options{}); err == nil || !strings.HasPrefix(err.Error(), notJSON) {
			t.Errorf("a bad file among the calibrations: %v", err)
		}
	})
}
