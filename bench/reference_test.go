package bench

import "testing"

func TestReference(t *testing.T) {
	ref, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Verify(); err != nil {
		t.Fatalf("the embedded reference does not verify: %v", err)
	}
	opts, err := ReferenceOptions()
	if err != nil {
		t.Fatal(err)
	}
	// The same options plan the reference's very steps: a provider
	// calibrated with them can be priced relative to it.
	plan, err := Plan(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != len(ref.Steps) {
		t.Fatalf("plan has %d steps, the reference %d", len(plan), len(ref.Steps))
	}
	for i, p := range plan {
		if p.Workload != ref.Steps[i].Workload || p.Seed != ref.Steps[i].Seed {
			t.Fatalf("step %d: plan %s/%d, reference %s/%d", i, p.Workload, p.Seed, ref.Steps[i].Workload, ref.Steps[i].Seed)
		}
	}
}
