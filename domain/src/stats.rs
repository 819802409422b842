//! Statistics as pure functions, checked against published values: the
//! Wilson score interval, the two-proportion z-test, Benjamini–Hochberg
//! q-values, the chi-square test (for sample-ratio mismatch), and an
//! always-valid (mixture sequential probability ratio) test that stays
//! valid however often people look. Every p-value is strictly positive
//! (`SMALLEST_P` at the least): tails come from `erfc` directly rather than
//! as `1 - cdf`, which cancels to 0 for large statistics.

/// The standard normal quantile for a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// The smallest p-value any test here answers. A tail below the smallest
/// normal double would round to 0 (or lose its precision as a subnormal);
/// reporting this floor instead is conservative and keeps every p strictly
/// positive, so ratios, logs and q-values built from it stay finite and
/// ordered.
pub const SMALLEST_P: f64 = f64::MIN_POSITIVE;

/// The complementary error function, to about 1.2e-7 relative accuracy
/// (Numerical Recipes' Chebyshev fit). The error is relative all the way
/// down the tail to the smallest normal double (x ≈ 26.5), which is what
/// lets p-values come straight from it.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// P(Z ≤ z) for a standard normal Z.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// P(|Z| ≥ |z|) for a standard normal Z: the two-sided p-value of a
/// z-statistic. Taken straight from `erfc`, whose error is relative, so the
/// tail keeps its precision where `1 - normal_cdf(|z|)` cancels to 0
/// (past |z| ≈ 8.3).
pub fn two_sided_normal_p(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2).clamp(SMALLEST_P, 1.0)
}

/// The Wilson score interval for `successes` out of `trials` at `z`.
pub fn wilson_interval(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// A two-sided two-proportion z-test (pooled): answers (z, p-value) for
/// rate a = x1/n1 against rate b = x2/n2.
pub fn two_proportion_test(x1: u64, n1: u64, x2: u64, n2: u64) -> (f64, f64) {
    if n1 == 0 || n2 == 0 {
        return (0.0, 1.0);
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if se == 0.0 {
        return (0.0, 1.0);
    }
    let z = (x1 as f64 / n1f - x2 as f64 / n2f) / se;
    (z, two_sided_normal_p(z))
}

/// A p- or q-value as people read it: four decimals, or scientific
/// notation below 0.0001 so that a tiny value does not print as 0.0000.
pub fn format_p(p: f64) -> String {
    if p >= 0.000_05 {
        format!("{p:.4}")
    } else {
        format!("{p:.1e}")
    }
}

/// Benjamini–Hochberg q-values, in the order of `p_values`.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p_values[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

/// The regularized upper incomplete gamma function Q(a, x).
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let ln_gamma_a = ln_gamma(a);
    if x < a + 1.0 {
        // Series for P, then Q = 1 - P.
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..500 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        1.0 - sum * (-x + a * x.ln() - ln_gamma_a).exp()
    } else {
        // Continued fraction (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..500 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (-x + a * x.ln() - ln_gamma_a).exp() * h
    }
}

/// ln Γ(x) (Lanczos approximation).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 6] = [
        76.180_091_729_471_46,
        -86.505_320_329_416_77,
        24.014_098_240_830_91,
        -1.231_739_572_450_155,
        0.001_208_650_973_866_179,
        -0.000_005_395_239_384_953,
    ];
    let mut y = x;
    let tmp = x + 5.5 - (x + 0.5) * (x + 5.5).ln();
    let mut ser = 1.000_000_000_190_015;
    for g in G {
        y += 1.0;
        ser += g / y;
    }
    -tmp + (2.506_628_274_631_000_5 * ser / x).ln()
}

/// P(χ²_k > statistic), never below `SMALLEST_P`.
pub fn chi_square_p(statistic: f64, degrees_of_freedom: u32) -> f64 {
    gamma_q(degrees_of_freedom as f64 / 2.0, statistic / 2.0).clamp(SMALLEST_P, 1.0)
}

/// Sample-ratio mismatch: the chi-square goodness-of-fit p-value of the
/// observed assignment counts against the intended weights.
pub fn sample_ratio_p(observed: &[u64], weights: &[f64]) -> f64 {
    let total: u64 = observed.iter().sum();
    let weight_sum: f64 = weights.iter().sum();
    if total == 0 || weight_sum <= 0.0 || observed.len() != weights.len() || observed.len() < 2 {
        return 1.0;
    }
    let statistic: f64 = observed
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let expected = total as f64 * w / weight_sum;
            if expected > 0.0 {
                (o as f64 - expected).powi(2) / expected
            } else {
                0.0
            }
        })
        .sum();
    chi_square_p(statistic, observed.len() as u32 - 1)
}

/// An always-valid p-value for the difference of two rates: the mixture
/// sequential probability ratio test of Johari et al. (2017) with a normal
/// mixture of variance `tau2` over the difference. Unlike a fixed-horizon
/// test, looking after every new observation does not inflate false
/// positives; the running minimum over looks stays a valid p-value. Never
/// below `SMALLEST_P`, however overwhelming the evidence.
pub fn always_valid_p(x1: u64, n1: u64, x2: u64, n2: u64, tau2: f64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (p1, p2) = (x1 as f64 / n1f, x2 as f64 / n2f);
    // Variance of the difference, floored so that a zero rate stays finite.
    let v = (p1 * (1.0 - p1) / n1f + p2 * (1.0 - p2) / n2f).max(1e-12);
    let theta = p1 - p2;
    let likelihood_ratio =
        (v / (v + tau2)).sqrt() * (tau2 * theta * theta / (2.0 * v * (v + tau2))).exp();
    (1.0 / likelihood_ratio).clamp(SMALLEST_P, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn the_normal_cdf_matches_tables() {
        assert!(close(normal_cdf(0.0), 0.5, 1e-7));
        assert!(close(normal_cdf(1.96), 0.975_002_1, 1e-6));
        assert!(close(normal_cdf(-1.0), 0.158_655_3, 1e-6));
        assert!(close(normal_cdf(2.575_829), 0.995, 1e-6));
    }

    #[test]
    fn erfc_keeps_its_relative_accuracy_far_in_the_tail() {
        // Python: math.erfc(x) (correctly rounded to within an ulp or two).
        for (x, want) in [
            (0.5, 0.479_500_122_186_953_5),
            (3.0, 2.209_049_699_858_543_8e-5),
            (6.0, 2.151_973_671_249_891_6e-17),
            (8.5 / std::f64::consts::SQRT_2, 1.895_906_964_440_671e-17),
            (10.0, 2.088_487_583_762_545e-45),
            (20.0, 5.395_865_611_607_900_5e-176),
            (26.0, 5.663_192_408_856_143e-296),
        ] {
            let got = erfc(x);
            assert!(
                ((got - want) / want).abs() < 1.2e-7,
                "erfc({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn a_two_sided_tail_at_z_8_5_is_tiny_but_not_zero() {
        // 2·Q(8.5) = erfc(8.5/√2) = 1.8959069644406637e-17 (mpmath, 40 digits).
        let want = 1.895_906_964_440_663_7e-17;
        for z in [8.5, -8.5] {
            let p = two_sided_normal_p(z);
            assert!(p > 0.0, "p at z = {z} underflowed to 0");
            assert!(((p - want) / want).abs() < 1e-6, "p at z = {z} was {p}");
        }
        // The subtraction this replaces loses everything at this z.
        assert_eq!(2.0 * (1.0 - normal_cdf(8.5)), 0.0);
    }

    #[test]
    fn no_finite_z_answers_a_p_of_zero() {
        for z in [0.0, 1.0, 8.3, 20.0, 37.0, 38.5, 40.0, 1e3, 1e300, f64::MAX] {
            let p = two_sided_normal_p(z);
            assert!(p > 0.0 && p <= 1.0, "p at z = {z} was {p}");
            assert_eq!(p, two_sided_normal_p(-z), "the tail is symmetric at {z}");
        }
        assert!(close(two_sided_normal_p(0.0), 1.0, 1e-7));
        assert!(close(two_sided_normal_p(Z_95), 0.05, 1e-7));
        // Monotone down the tail, flooring only where the double runs out.
        assert!(two_sided_normal_p(20.0) > two_sided_normal_p(30.0));
        assert_eq!(two_sided_normal_p(40.0), SMALLEST_P);
    }

    #[test]
    fn a_huge_difference_in_proportions_still_answers_a_positive_p() {
        // z ≈ 22.4: p ≈ 5e-111, representable, so it is reported as it is.
        let (z, p) = two_proportion_test(600, 1000, 100, 1000);
        assert!(z > 20.0, "{z}");
        assert!(p > 0.0, "p underflowed to 0 at z = {z}");
        let want = erfc(z / std::f64::consts::SQRT_2);
        assert!(((p - want) / want).abs() < 1e-12, "{p} against {want}");
        // z ≈ 141: the tail is below any double, so the floor is reported.
        let (z, p) = two_proportion_test(10_000, 10_000, 0, 10_000);
        assert!(z > 100.0, "{z}");
        assert_eq!(p, SMALLEST_P, "at z = {z}");
    }

    #[test]
    fn q_values_built_from_tiny_p_values_stay_positive() {
        let tiny = [
            two_sided_normal_p(8.5),
            two_proportion_test(600, 1000, 100, 1000).1,
            two_proportion_test(10_000, 10_000, 0, 10_000).1,
            0.03,
            0.5,
        ];
        let q = benjamini_hochberg(&tiny);
        for (p, q) in tiny.iter().zip(&q) {
            assert!(*q > 0.0 && q.is_finite(), "p {p} gave q {q}");
            assert!(q >= p, "a q-value is never below its p: {p} {q}");
        }
        // Order survives: the smaller p keeps the smaller (or equal) q.
        assert!(q[2] <= q[1] && q[1] <= q[0] && q[0] < q[3], "{q:?}");
    }

    #[test]
    fn other_tests_floor_their_p_values_above_zero() {
        assert!(chi_square_p(5_000.0, 1) > 0.0);
        assert!(sample_ratio_p(&[100_000, 10], &[1.0, 1.0]) > 0.0);
        assert!(always_valid_p(1_000_000, 1_000_000, 0, 1_000_000, 0.01) > 0.0);
    }

    #[test]
    fn tiny_p_values_print_in_scientific_notation_rather_than_as_zero() {
        assert_eq!(format_p(0.028_46), "0.0285");
        assert_eq!(format_p(1.0), "1.0000");
        assert_eq!(format_p(two_sided_normal_p(8.5)), "1.9e-17");
        assert_eq!(format_p(SMALLEST_P), "2.2e-308");
    }

    #[test]
    fn the_wilson_interval_matches_newcombe_1998() {
        // Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263.
        let (lo, hi) = wilson_interval(81, 263, Z_95);
        assert!(
            close(lo, 0.2553, 1e-4) && close(hi, 0.3662, 1e-4),
            "{lo} {hi}"
        );
        // 0/10 (table I): 0 to 0.2775.
        let (lo, hi) = wilson_interval(0, 10, Z_95);
        assert!(close(lo, 0.0, 1e-9) && close(hi, 0.2775, 1e-4), "{lo} {hi}");
        assert_eq!(wilson_interval(0, 0, Z_95), (0.0, 1.0));
    }

    #[test]
    fn the_two_proportion_test_matches_r_prop_test() {
        // R: prop.test(c(45, 30), c(100, 100), correct = FALSE) gives
        // X-squared = 4.8 (z² of the pooled test), p-value = 0.02846.
        let (z, p) = two_proportion_test(45, 100, 30, 100);
        assert!(
            close(z * z, 4.8, 1e-9) && close(p, 0.02846, 1e-5),
            "{z} {p}"
        );
        assert_eq!(two_proportion_test(0, 0, 1, 2), (0.0, 1.0));
    }

    #[test]
    fn benjamini_hochberg_matches_r_p_adjust() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH") = 0.02 0.04 0.04 0.02
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
        for (got, want) in q.iter().zip([0.02, 0.04, 0.04, 0.02]) {
            assert!(close(*got, want, 1e-12), "{q:?}");
        }
        // R: p.adjust(c(0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205), "BH")
        let q = benjamini_hochberg(&[0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205]);
        let want = [
            0.008, 0.032, 0.0672, 0.0672, 0.0672, 0.08, 0.08457143, 0.205,
        ];
        for (got, want) in q.iter().zip(want) {
            assert!(close(*got, want, 1e-6), "{q:?}");
        }
    }

    #[test]
    fn chi_square_tail_probabilities_match_tables() {
        assert!(close(chi_square_p(3.841_459, 1), 0.05, 1e-5));
        assert!(close(chi_square_p(5.991_465, 2), 0.05, 1e-5));
        assert!(close(chi_square_p(7.814_728, 3), 0.05, 1e-5));
        assert!(close(chi_square_p(6.634_897, 1), 0.01, 1e-5));
        assert!(close(chi_square_p(0.0, 4), 1.0, 1e-12));
    }

    #[test]
    fn a_sample_ratio_mismatch_is_detected_and_a_fair_split_is_not() {
        assert!(sample_ratio_p(&[5000, 5000], &[1.0, 1.0]) > 0.99);
        assert!(sample_ratio_p(&[5000, 4600], &[1.0, 1.0]) < 0.001);
        assert!(sample_ratio_p(&[2000, 1000], &[2.0, 1.0]) > 0.99);
    }

    #[test]
    fn always_valid_p_values_stay_valid_under_daily_peeking() {
        // Simulated A/A tests peeked at after every 50 sends: the share that
        // ever crosses 0.05 stays near or below 5% (a fixed-horizon test
        // peeked at this often crosses far more often).
        let mut seed: u64 = 0x5eed;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let (runs, looks, per_look, rate) = (400, 40, 50, 0.1);
        let (mut sequential, mut naive) = (0, 0);
        for _ in 0..runs {
            let (mut x1, mut x2, mut n) = (0u64, 0u64, 0u64);
            let (mut crossed_seq, mut crossed_naive) = (false, false);
            for _ in 0..looks {
                for _ in 0..per_look {
                    x1 += u64::from(next() < rate);
                    x2 += u64::from(next() < rate);
                }
                n += per_look;
                crossed_seq |=
                    always_valid_p(x1, n, x2, n, crate::experiment::MIXTURE_VARIANCE) < 0.05;
                crossed_naive |= two_proportion_test(x1, n, x2, n).1 < 0.05;
            }
            sequential += usize::from(crossed_seq);
            naive += usize::from(crossed_naive);
        }
        let (seq_rate, naive_rate) = (sequential as f64 / runs as f64, naive as f64 / runs as f64);
        assert!(seq_rate <= 0.07, "sequential false positives {seq_rate}");
        assert!(
            naive_rate > 0.15,
            "peeking a fixed-horizon test should inflate: {naive_rate}"
        );
    }

    #[test]
    fn an_always_valid_test_finds_a_real_difference() {
        assert!(always_valid_p(300, 2000, 200, 2000, 0.01) < 0.01);
    }
}
