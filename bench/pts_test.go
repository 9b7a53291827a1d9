package bench

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestParsePTSComposite(t *testing.T) {
	gzip, err := os.ReadFile("../testdata/bench/pts/compress-gzip.composite.xml")
	if err != nil {
		t.Fatal(err)
	}
	multi, err := os.ReadFile("../testdata/bench/pts/multi.composite.xml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		wantErr string
		results int
		skipped int
		version string
		check   func(t *testing.T, f *PTSFile)
	}{
		{name: "one result, lower is better", file: string(gzip), results: 1, version: "10.8.4", check: func(t *testing.T, f *PTSFile) {
			r := f.Results[0]
			if r.Identifier != "pts/compress-gzip-1.2.0" || r.Value != 38.214 || r.Proportion != "LIB" || r.System != "zennet" {
				t.Errorf("result %+v", r)
			}
			if len(r.Runs) != 3 || r.Runs[1] != 38.391 || len(r.RunSeconds) != 3 || r.RunSeconds[2] != 38.20 {
				t.Errorf("runs %v, run seconds %v", r.Runs, r.RunSeconds)
			}
			if s, unit := r.Score(); unit != "1/Seconds" || s != 1/38.214 {
				t.Errorf("score %v %s", s, unit)
			}
		}},
		{name: "several tests, systems and a line graph", file: string(multi), results: 4, skipped: 1, version: "10.8.4", check: func(t *testing.T, f *PTSFile) {
			if len(f.Systems) != 2 || f.Systems[1].Identifier != "zennet-ptrace" {
				t.Errorf("systems %+v", f.Systems)
			}
			stream := f.Results[1]
			if stream.System != "zennet-ptrace" || stream.Description != "Type: Copy" || stream.Value != 14388.1 || len(stream.Runs) != 3 {
				t.Errorf("second entry %+v", stream)
			}
			if s, unit := f.Results[0].Score(); unit != "MB/s" || s != 14626.4 {
				t.Errorf("score %v %s", s, unit)
			}
			lvl := f.Results[3]
			if s, _ := lvl.Score(); lvl.Identifier != "pts/leveldb-1.0.2" || s != 0 {
				t.Errorf("a LIB value of 0 scores %v (%+v)", s, lvl)
			}
			if !strings.HasPrefix(f.Skipped[0], "pts/fs-mark-3.3.0") {
				t.Errorf("skipped %v", f.Skipped)
			}
			st := ptsStep(f)
			if st.Workload != "pts" || st.Params["test"] != "pts/stream-1.3.4" || st.Ops != 5 || len(st.PTS) != 4 {
				t.Errorf("step %+v", st)
			}
		}},
		{name: "truncated", file: string(gzip[:len(gzip)/2]), wantErr: "truncated"},
		{name: "not xml", file: "composite", wantErr: "pts result file"},
		{name: "another root", file: `<?xml version="1.0"?><Other></Other>`, wantErr: "expected element type <PhoronixTestSuite>"},
		{name: "no results", file: `<PhoronixTestSuite><Generated><Title>x</Title></Generated></PhoronixTestSuite>`, wantErr: "no results"},
		{name: "only a line graph", file: `<PhoronixTestSuite><Result><Identifier>pts/x-1.0.0</Identifier><Data><Entry><Value>1,2</Value></Entry></Data></Result></PhoronixTestSuite>`, wantErr: "no numeric result"},
		{name: "bare minimum", file: `<PhoronixTestSuite><Result><Identifier>pts/x-1.0.0</Identifier><Scale>ops</Scale><Proportion>hib</Proportion><Data><Entry><Value> 7 </Value><RawString>6:bad:8</RawString></Entry></Data></Result></PhoronixTestSuite>`, results: 1, version: "unknown", check: func(t *testing.T, f *PTSFile) {
			if r := f.Results[0]; r.Value != 7 || r.Runs != nil || r.Proportion != "HIB" {
				t.Errorf("result %+v", r)
			}
		}},
		{name: "bad proportion", file: `<PhoronixTestSuite><Result><Identifier>pts/x-1.0.0</Identifier><Proportion>BEST</Proportion><Data><Entry><Value>7</Value></Entry></Data></Result></PhoronixTestSuite>`, wantErr: "proportion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParsePTSComposite(strings.NewReader(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Results) != tt.results || len(f.Skipped) != tt.skipped || f.Version() != tt.version {
				t.Fatalf("%d results, %d skipped, version %s", len(f.Results), len(f.Skipped), f.Version())
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func FuzzParsePTSComposite(f *testing.F) {
	for _, name := range []string{"compress-gzip", "multi"} {
		b, err := os.ReadFile("../testdata/bench/pts/" + name + ".composite.xml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/3])
	}
	f.Add([]byte(`<PhoronixTestSuite><Result><Identifier>a</Identifier><Data><Entry><Value>NaN</Value></Entry></Data></Result></PhoronixTestSuite>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pf, err := ParsePTSComposite(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Whatever parses makes a step that a set accepts.
		st := ptsStep(pf)
		st.Seconds = 1
		st.Delta, st.Rates = map[string]uint64{"cpu_ns": 1}, map[string]float64{"cpu_ns": 1}
		if err := st.validate(); err != nil {
			t.Fatalf("step of a parsed file does not validate: %v", err)
		}
	})
}
