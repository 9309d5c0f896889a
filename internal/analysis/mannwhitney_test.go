package analysis

import (
	"math"
	"math/rand/v2"
	"testing"
)

// near reports whether got is want to within 1e-9.
func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9 }

// The expected values were worked by hand (U by counting pairs, ties
// halved; z = (U − n₁n₂/2 − ½) / σ with σ² = n₁n₂/12·(n+1 − Σ(t³−t)/(n(n−1)));
// p = ½·erfc(z/√2)), as scipy.stats.mannwhitneyu(b, a, alternative="greater",
// method="asymptotic") gives them.
func TestMannWhitneyKnownValues(t *testing.T) {
	for _, tc := range []struct {
		name    string
		a, b    []float64
		u, z, p float64
	}{
		{"b all larger", []float64{1, 2, 3}, []float64{4, 5, 6}, 9, 1.7457431218879391, 0.04042779918502615},
		{"b all smaller", []float64{4, 5, 6}, []float64{1, 2, 3}, 0, -2.182178902359924, 0.9854518341293739},
		// Ties: 2 twice in a and once in b, 3 once in each.
		{"ties", []float64{1, 2, 2, 3}, []float64{2, 3, 4, 5}, 13.5, 1.4883513944689681, 0.06832912386907376},
		{"unequal sizes", []float64{19, 22, 16, 29, 24}, []float64{20, 11, 17, 12}, 3, -1.8371173070873834, 0.9669037101389033},
		{"ties across", []float64{1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7}, []float64{3.3, 3.3, 8.8, 9.9, 5.5, 10.1}, 30.5, 1.2946367681018216, 0.09772278115356309},
	} {
		u, z, p := MannWhitney(tc.a, tc.b)
		if !near(u, tc.u) || !near(z, tc.z) || !near(p, tc.p) {
			t.Errorf("%s: MannWhitney = (%v, %v, %v), want (%v, %v, %v)", tc.name, u, z, p, tc.u, tc.z, tc.p)
		}
	}
}

// U is the count of pairs with b the larger (ties half): check the merge
// against counting every pair, on data with many ties.
func TestMannWhitneyUCountsPairs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		a, b := make([]float64, 1+r.IntN(40)), make([]float64, 1+r.IntN(40))
		for i := range a {
			a[i] = float64(r.IntN(10))
		}
		for i := range b {
			b[i] = float64(r.IntN(12))
		}
		var pairs float64
		for _, x := range a {
			for _, y := range b {
				switch {
				case y > x:
					pairs++
				case y == x:
					pairs += 0.5
				}
			}
		}
		u, _, _ := MannWhitney(a, b)
		back, _, _ := MannWhitney(b, a)
		if u != pairs || u+back != float64(len(a)*len(b)) {
			t.Fatalf("a=%v b=%v: U %v and reverse %v, want %v and %v", a, b, u, back, pairs, float64(len(a)*len(b))-pairs)
		}
	}
}

func TestMannWhitneyLargeSamples(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	a, same, shifted := make([]float64, 500), make([]float64, 500), make([]float64, 500)
	for i := range a {
		a[i] = 100 + 20*r.NormFloat64()
		same[i] = 100 + 20*r.NormFloat64()
		shifted[i] = a[i] + 10
	}
	if _, _, p := MannWhitney(a, shifted); p >= 0.001 {
		t.Errorf("b = a + half a standard deviation: p = %v, want < 0.001", p)
	}
	if _, _, p := MannWhitney(shifted, a); p <= 0.999 {
		t.Errorf("b = a − half a standard deviation: p = %v, want > 0.999 (b is smaller)", p)
	}
	if _, _, p := MannWhitney(a, same); p <= 0.05 {
		t.Errorf("one distribution: p = %v, want > 0.05", p)
	}
	if _, _, p := MannWhitney(a, a); p <= 0.5 {
		t.Errorf("the same values: p = %v, want > 0.5", p)
	}
}

func TestMannWhitneyNoEvidence(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []float64
	}{
		{"a empty", nil, []float64{1, 2}},
		{"b empty", []float64{1, 2}, nil},
		{"every value tied", []float64{5, 5, 5}, []float64{5, 5}},
		{"only NaN in b", []float64{1, 2}, []float64{math.NaN()}},
	} {
		if _, z, p := MannWhitney(tc.a, tc.b); z != 0 || p != 1 {
			t.Errorf("%s: z %v p %v, want 0 and 1", tc.name, z, p)
		}
	}
	u, _, _ := MannWhitney([]float64{1, math.NaN(), 2}, []float64{3, math.NaN()})
	if u != 2 {
		t.Errorf("NaN left out: U = %v, want 2", u)
	}
}
