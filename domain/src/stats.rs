//! Statistics as pure functions, checked against published values: the
//! Wilson score interval, the two-proportion z-test, Fisher's exact test
//! (for tables too small for the normal approximation), the
//! Mantel–Haenszel risk ratio over strata, Benjamini–Hochberg q-values, the
//! chi-square test (for sample-ratio mismatch), and an always-valid
//! (mixture sequential probability ratio) test that stays valid however
//! often people look. Every p-value is strictly positive
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
/// below `SMALLEST_P`, however overwhelming the evidence. It is
/// `always_valid_p_normal` of the difference `x1/n1 - x2/n2` with the
/// unpooled variance `p1(1-p1)/n1 + p2(1-p2)/n2`, floored at 1e-12 so that
/// a zero rate stays finite.
pub fn always_valid_p(x1: u64, n1: u64, x2: u64, n2: u64, tau2: f64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (p1, p2) = (x1 as f64 / n1f, x2 as f64 / n2f);
    let v = (p1 * (1.0 - p1) / n1f + p2 * (1.0 - p2) / n2f).max(1e-12);
    always_valid_p_normal(p1 - p2, v, tau2)
}

/// The always-valid p-value of the mixture SPRT (Johari et al. 2017) for an
/// asymptotically normal estimate `estimate` of a parameter whose null
/// value is 0, with variance `variance`, under a normal mixture of variance
/// `tau2`: min(1, 1/Λ) with
/// Λ = sqrt(V/(V+τ²)) · exp(θ̂²τ² / (2V(V+τ²))), computed as ln Λ so that
/// overwhelming evidence floors at `SMALLEST_P` rather than overflowing.
/// 1 when `variance` is not finite and positive, when `estimate` is not
/// finite, or when `tau2` is not finite and positive (no mixture, no
/// evidence).
pub fn always_valid_p_normal(estimate: f64, variance: f64, tau2: f64) -> f64 {
    let usable = |x: f64| x.is_finite() && x > 0.0;
    if !(usable(variance) && usable(tau2) && estimate.is_finite()) {
        return 1.0;
    }
    let total = variance + tau2;
    let ln_lambda =
        0.5 * (variance / total).ln() + estimate * estimate * tau2 / (2.0 * variance * total);
    (-ln_lambda).exp().clamp(SMALLEST_P, 1.0)
}

/// [`always_valid_p_normal`] of the log risk ratio of `x1` events in `n1`
/// sends against `x0` in `n0`, with its delta-method variance
/// 1/x1 − 1/n1 + 1/x0 − 1/n0. `None` when an arm has no events or nothing
/// but events: no finite log ratio or variance.
pub fn always_valid_p_risk_ratio(x1: u64, n1: u64, x0: u64, n0: u64, tau2: f64) -> Option<f64> {
    if x1 == 0 || x0 == 0 || x1 >= n1 || x0 >= n0 {
        return None;
    }
    let (x1, n1, x0, n0) = (x1 as f64, n1 as f64, x0 as f64, n0 as f64);
    let log_ratio = ((x1 / n1) / (x0 / n0)).ln();
    let variance = 1.0 / x1 - 1.0 / n1 + 1.0 / x0 - 1.0 / n0;
    Some(always_valid_p_normal(log_ratio, variance, tau2))
}

/// The always-valid (1 − `alpha`) confidence sequence of the same mixture
/// SPRT: the null values θ₀ that `always_valid_p_normal(estimate − θ₀, …)`
/// does not reject at `alpha`, which is `estimate` ± h with
/// h = √(V(V+τ²)/τ² · (2 ln(1/α) + ln((V+τ²)/V))). The chance that it ever
/// excludes the true value, however often it is computed as data comes in,
/// is at most `alpha` (Johari et al. 2017, the duality of always-valid
/// p-values and confidence sequences): a check that re-reads it at every
/// look keeps its error rate, where a fixed 95% interval re-read every
/// minute would not. The whole line when the inputs are not usable (as
/// `always_valid_p_normal`) or `alpha` is not in (0, 1).
pub fn always_valid_interval(estimate: f64, variance: f64, tau2: f64, alpha: f64) -> (f64, f64) {
    let usable = |x: f64| x.is_finite() && x > 0.0;
    if !(usable(variance) && usable(tau2) && estimate.is_finite() && alpha > 0.0 && alpha < 1.0) {
        return (f64::NEG_INFINITY, f64::INFINITY);
    }
    let total = variance + tau2;
    let half =
        (variance * total / tau2 * (2.0 * (1.0 / alpha).ln() + (total / variance).ln())).sqrt();
    (estimate - half, estimate + half)
}

/// ln C(n, k) by ln-gamma.
fn ln_choose(n: u64, k: u64) -> f64 {
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

/// Fisher's exact test for a 2x2 table (events `a` of `n1` against `c` of
/// `n0`), two-sided: the sum of the hypergeometric probabilities of every
/// table with the same margins that is no more likely than the observed
/// one (R's `fisher.test` convention, with a relative tolerance of 1e-7).
/// Computed in log space (ln-gamma) and normalised over the support, so it
/// works for tens of thousands of sends. Events above their sends count as
/// all of them. Never below `SMALLEST_P`.
pub fn fisher_exact_p(a: u64, n1: u64, c: u64, n0: u64) -> f64 {
    let (a, c) = (a.min(n1), c.min(n0));
    let events = a + c;
    let (low, high) = (events.saturating_sub(n0), events.min(n1));
    if low == high {
        return 1.0;
    }
    // ln P(x) up to the constant -ln C(n1 + n0, events), which the
    // normalisation below cancels.
    let ln_p = |x: u64| ln_choose(n1, x) + ln_choose(n0, events - x);
    let logs: Vec<f64> = (low..=high).map(ln_p).collect();
    let observed = logs[(a - low) as usize];
    let most = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let threshold = observed + (1.0 + 1e-7f64).ln();
    let (mut total, mut tail) = (0.0, 0.0);
    for &l in &logs {
        let d = (l - most).exp();
        total += d;
        if l <= threshold {
            tail += d;
        }
    }
    (tail / total).clamp(SMALLEST_P, 1.0)
}

/// The smallest expected cell count of the 2x2 table under independence
/// (a, n1-a, c, n0-c): below 5 the normal approximation is not trusted.
/// 0 for an empty table.
pub fn min_expected_count(a: u64, n1: u64, c: u64, n0: u64) -> f64 {
    let total = (n1 + n0) as f64;
    if total == 0.0 {
        return 0.0;
    }
    let events = (a.min(n1) + c.min(n0)) as f64;
    let non_events = total - events;
    (n1.min(n0) as f64) * events.min(non_events) / total
}

/// A stratum of a stratified 2x2 comparison: the key's sends and events and
/// the rest's.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stratum {
    pub events: u64,
    pub sends: u64,
    pub rest_events: u64,
    pub rest_sends: u64,
}

/// A risk ratio with the variance of its logarithm and a 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskRatio {
    pub ratio: f64,
    pub log_ratio: f64,
    pub log_variance: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// The Mantel–Haenszel risk ratio over strata,
/// RR = Σ aᵢN0ᵢ/Tᵢ ÷ Σ bᵢN1ᵢ/Tᵢ (a, N1: the key's events and sends; b, N0:
/// the rest's; T = N1 + N0), with the Greenland & Robins (1985, Biometrics
/// 41:55) variance of its logarithm,
/// Σ (N1ᵢN0ᵢ(aᵢ+bᵢ) − aᵢbᵢTᵢ)/Tᵢ² ÷ (Σ aᵢN0ᵢ/Tᵢ · Σ bᵢN1ᵢ/Tᵢ), and the 95%
/// interval exp(ln RR ± 1.96·√var). Strata with an empty arm contribute
/// nothing. None when either MH sum is 0 (no events on one side) or no
/// stratum has both arms. With one stratum it is the crude risk ratio and
/// the usual 1/a − 1/N1 + 1/b − 1/N0.
pub fn mantel_haenszel_risk_ratio(strata: &[Stratum]) -> Option<RiskRatio> {
    let (mut r, mut s, mut p) = (0.0f64, 0.0f64, 0.0f64);
    for stratum in strata {
        if stratum.sends == 0 || stratum.rest_sends == 0 {
            continue;
        }
        let (a, n1) = (
            stratum.events.min(stratum.sends) as f64,
            stratum.sends as f64,
        );
        let (b, n0) = (
            stratum.rest_events.min(stratum.rest_sends) as f64,
            stratum.rest_sends as f64,
        );
        let t = n1 + n0;
        r += a * n0 / t;
        s += b * n1 / t;
        p += (n1 * n0 * (a + b) - a * b * t) / (t * t);
    }
    if r <= 0.0 || s <= 0.0 {
        return None;
    }
    let ratio = r / s;
    let log_ratio = ratio.ln();
    let log_variance = p / (r * s);
    let half = Z_95 * log_variance.max(0.0).sqrt();
    Some(RiskRatio {
        ratio,
        log_ratio,
        log_variance,
        ci_low: (log_ratio - half).exp(),
        ci_high: (log_ratio + half).exp(),
    })
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
    fn the_always_valid_p_of_a_risk_ratio_is_that_of_its_log_with_the_delta_method_variance() {
        let tau2 = 1.3_f64.ln().powi(2);
        let expected = always_valid_p_normal(
            (0.15_f64 / 0.10).ln(),
            1.0 / 150.0 - 1.0 / 1000.0 + 1.0 / 100.0 - 1.0 / 1000.0,
            tau2,
        );
        let p = always_valid_p_risk_ratio(150, 1000, 100, 1000, tau2).expect("a log ratio");
        assert!(close(p, expected, 1e-12), "{p} against {expected}");
        assert_eq!(always_valid_p_risk_ratio(0, 1000, 100, 1000, tau2), None);
        assert_eq!(always_valid_p_risk_ratio(150, 1000, 1000, 1000, tau2), None);
    }

    #[test]
    fn an_always_valid_interval_is_the_set_its_p_value_does_not_reject() {
        let (estimate, variance, tau2) = (0.18, 0.004, 1.3_f64.ln().powi(2));
        let (low, high) = always_valid_interval(estimate, variance, tau2, 0.05);
        // At each bound the always-valid p of the shifted null is alpha.
        assert!(close(
            always_valid_p_normal(estimate - low, variance, tau2),
            0.05,
            1e-9
        ));
        assert!(close(
            always_valid_p_normal(estimate - high, variance, tau2),
            0.05,
            1e-9
        ));
        // It is wider than the fixed-horizon interval, and excludes 0 when
        // (and only when) the always-valid p of 0 is below alpha.
        let fixed = Z_95 * variance.sqrt();
        assert!(high - estimate > fixed, "{low}..{high} against ±{fixed}");
        assert_eq!(
            low > 0.0,
            always_valid_p_normal(estimate, variance, tau2) < 0.05
        );
        let (low, high) = always_valid_interval(estimate, f64::NAN, tau2, 0.05);
        assert!(low.is_infinite() && high.is_infinite());
    }

    #[test]
    fn an_always_valid_interval_keeps_its_coverage_when_read_at_every_look() {
        // A true log risk ratio of 0 estimated afresh after every 200 sends
        // an arm, 40 looks: the always-valid interval ever excludes 0 in
        // about 5% of runs at most; the fixed 95% interval read as often
        // excludes it far more often.
        let mut seed: u64 = 0x1dea;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let tau2 = 1.3_f64.ln().powi(2);
        let (runs, looks, per_look, rate) = (300, 40, 200, 0.1);
        let (mut sequential, mut fixed) = (0, 0);
        for _ in 0..runs {
            let (mut x1, mut x2, mut n) = (0u64, 0u64, 0u64);
            let (mut missed_seq, mut missed_fixed) = (false, false);
            for _ in 0..looks {
                for _ in 0..per_look {
                    x1 += u64::from(next() < rate);
                    x2 += u64::from(next() < rate);
                }
                n += per_look;
                if x1 == 0 || x2 == 0 {
                    continue;
                }
                let log_ratio = (x1 as f64 / x2 as f64).ln();
                let variance = 1.0 / x1 as f64 - 1.0 / n as f64 + 1.0 / x2 as f64 - 1.0 / n as f64;
                let (low, high) = always_valid_interval(log_ratio, variance, tau2, 0.05);
                missed_seq |= low > 0.0 || high < 0.0;
                missed_fixed |= log_ratio.abs() > Z_95 * variance.sqrt();
            }
            sequential += usize::from(missed_seq);
            fixed += usize::from(missed_fixed);
        }
        let (seq_rate, fixed_rate) = (sequential as f64 / runs as f64, fixed as f64 / runs as f64);
        assert!(
            seq_rate <= 0.07,
            "always-valid interval missed in {seq_rate}"
        );
        assert!(
            fixed_rate > 0.15,
            "a fixed interval read as often: {fixed_rate}"
        );
    }

    #[test]
    fn an_always_valid_test_finds_a_real_difference() {
        assert!(always_valid_p(300, 2000, 200, 2000, 0.01) < 0.01);
    }

    /// The hypergeometric probabilities of every table with the margins of
    /// (a, n1, c, n0), in order from the smallest top-left count, by direct
    /// multiplication in f64: P(low) as a product of ratios, then
    /// P(x+1) = P(x)·(n1−x)(m−x) / ((x+1)(n0+x+1−m)). Independent of
    /// `fisher_exact_p`'s ln-gamma route.
    fn direct_hypergeometric(a: u64, n1: u64, c: u64, n0: u64) -> (u64, Vec<f64>) {
        let m = a + c;
        let n = n1 + n0;
        let (low, high) = (m.saturating_sub(n0), m.min(n1));
        // P(low) = C(n1, low)·C(n0, m−low) / C(n, m), its m numerator
        // factors paired with the m factors (j+1)/(n−j) of 1/C(n, m) so
        // that no partial product overflows.
        let numerators = (0..low)
            .map(|i| (n1 - i) as f64 / (i + 1) as f64)
            .chain((0..(m - low)).map(|i| (n0 - i) as f64 / (i + 1) as f64));
        let first: f64 = numerators
            .zip(0..m)
            .map(|(f, j)| f * (j + 1) as f64 / (n - j) as f64)
            .product();
        let mut probabilities = vec![first];
        for x in low..high {
            let last = *probabilities.last().expect("one probability at least");
            probabilities
                .push(last * ((n1 - x) * (m - x)) as f64 / ((x + 1) * (n0 + x + 1 - m)) as f64);
        }
        (low, probabilities)
    }

    fn direct_fisher(a: u64, n1: u64, c: u64, n0: u64) -> f64 {
        let (low, d) = direct_hypergeometric(a, n1, c, n0);
        let observed = d[(a - low) as usize] * (1.0 + 1e-7);
        d.iter().filter(|&&p| p <= observed).sum::<f64>().min(1.0)
    }

    #[test]
    fn fishers_exact_test_matches_r_fisher_test() {
        // R: fisher.test(matrix(c(3, 1, 1, 3), 2))$p.value = 0.4857 (the
        // tea-tasting table of ?fisher.test; two-sided). Exactly 34/70:
        // the tables (0..4 | margins 4, 4, 4, 4) have weights 1, 16, 36, 16, 1.
        let p = fisher_exact_p(3, 4, 1, 4);
        assert!(close(p, 34.0 / 70.0, 1e-12), "{p}");
        assert!(close(p, 0.4857, 5e-5), "{p}");
        // R: fisher.test(Convictions)$p.value = 0.0005367 (the convictions
        // of twins of ?fisher.test, matrix(c(2, 10, 15, 3), 2): 2 of 17
        // dizygotic against 10 of 13 monozygotic); exact rational
        // arithmetic (Python fractions and math.comb) gives
        // 0.0005367241191434358.
        let (p, want) = (fisher_exact_p(2, 17, 10, 13), 0.000_536_724_119_143_435_8);
        assert!(((p - want) / want).abs() < 1e-10, "{p}");
        assert!(close(p, 0.000_536_7, 5e-8), "{p}");
        // Symmetric in the arms and in events against non-events.
        assert!(close(fisher_exact_p(10, 13, 2, 17), p, 1e-15));
        assert!(close(fisher_exact_p(15, 17, 3, 13), p, 1e-15));
        // Identical arms, and an empty arm: nothing to test.
        assert!(close(fisher_exact_p(5, 100, 5, 100), 1.0, 1e-12));
        assert_eq!(fisher_exact_p(3, 10, 0, 0), 1.0);
        assert_eq!(fisher_exact_p(0, 10, 0, 10), 1.0);
    }

    #[test]
    fn fishers_exact_test_handles_tens_of_thousands_of_sends() {
        // 7 events in 171 sends against 293 in 26,329 (smallest expected
        // count 171·300/26,500 = 1.94, too small for the normal
        // approximation). The exact two-sided p, summed over the 172
        // tables in exact rational arithmetic (Python fractions with
        // math.comb, R's 1e-7 tolerance), is 0.003440404257593286.
        let want = 0.003_440_404_257_593_286;
        let p = fisher_exact_p(7, 171, 293, 26_329);
        assert!(((p - want) / want).abs() < 1e-8, "{p}");
        // The same by direct f64 multiplication of the hypergeometric terms.
        let direct = direct_fisher(7, 171, 293, 26_329);
        assert!(((direct - want) / want).abs() < 1e-9, "{direct}");
        assert!(close(
            min_expected_count(7, 171, 293, 26_329),
            1.935_849,
            1e-6
        ));
    }

    #[test]
    fn the_log_space_sum_matches_a_direct_sum_on_every_small_table() {
        for n1 in 1..=12u64 {
            for n0 in 1..=12u64 {
                for a in 0..=n1 {
                    for c in 0..=n0 {
                        let (got, want) =
                            (fisher_exact_p(a, n1, c, n0), direct_fisher(a, n1, c, n0));
                        assert!(
                            close(got, want, 1e-12),
                            "{a}/{n1} against {c}/{n0}: {got} against {want}"
                        );
                    }
                }
            }
        }
        // Exact rational arithmetic (Python fractions): 1/10 against 9/10 is
        // 0.001093333910671372; 10/20 against 3/25 is 0.008050820302663752;
        // 0/5 against 5/5 is 2/252 = 0.007936507936507936.
        for ((a, n1, c, n0), want) in [
            ((1, 10, 9, 10), 0.001_093_333_910_671_372),
            ((10, 20, 3, 25), 0.008_050_820_302_663_752),
            ((0, 5, 5, 5), 2.0 / 252.0),
        ] {
            let p = fisher_exact_p(a, n1, c, n0);
            assert!(((p - want) / want).abs() < 1e-10, "{a}/{n1} {c}/{n0}: {p}");
        }
    }

    #[test]
    fn the_smallest_expected_count_is_the_smallest_margin_product() {
        // Margins 10, 10 and 4 events, 16 non-events: 10·4/20 = 2.
        assert!(close(min_expected_count(3, 10, 1, 10), 2.0, 1e-12));
        // Margins 100, 300 and 200 events, 200 non-events: 100·200/400 = 50.
        assert!(close(min_expected_count(50, 100, 150, 300), 50.0, 1e-12));
        assert_eq!(min_expected_count(0, 0, 0, 0), 0.0);
        assert_eq!(min_expected_count(0, 10, 0, 10), 0.0);
    }

    #[test]
    fn the_mantel_haenszel_risk_ratio_matches_the_tolbutamide_example() {
        // Rothman, Greenland & Lash, Modern Epidemiology (3rd ed.), ch. 15:
        // UGDP tolbutamide against placebo, deaths by age. Under 55: 8 of 106
        // against 5 of 120; 55 and over: 22 of 98 against 16 of 85. The
        // published RR_MH is 1.33. The further digits are the formulas in
        // exact rational arithmetic (Python fractions):
        //   R = 8·120/226 + 22·85/183, S = 5·106/226 + 16·98/183,
        //   RR = R/S = 1.3255553241551052,
        //   Σ (N1·N0·M1 − a·b·T)/T² ÷ (R·S) = 0.06707148364941264,
        //   95% interval exp(ln RR ± 1.959964·√var) = 0.7979070 to 2.2021324.
        let rr = mantel_haenszel_risk_ratio(&[
            Stratum {
                events: 8,
                sends: 106,
                rest_events: 5,
                rest_sends: 120,
            },
            Stratum {
                events: 22,
                sends: 98,
                rest_events: 16,
                rest_sends: 85,
            },
        ])
        .expect("both sides have events");
        assert!(close(rr.ratio, 1.33, 0.005), "{rr:?}");
        assert!(close(rr.ratio, 1.325_555_324_155_105_2, 1e-12), "{rr:?}");
        assert!(close(rr.log_ratio, 1.325_555_324_155_105_2f64.ln(), 1e-12));
        assert!(
            close(rr.log_variance, 0.067_071_483_649_412_64, 1e-12),
            "{rr:?}"
        );
        assert!(close(rr.ci_low, 0.797_907_040_146_485_7, 1e-9), "{rr:?}");
        assert!(close(rr.ci_high, 2.202_132_365_035_111_7, 1e-9), "{rr:?}");
    }

    #[test]
    fn one_stratum_gives_the_crude_risk_ratio_and_its_usual_variance() {
        for (a, n1, b, n0) in [(30, 200, 10, 100), (7, 171, 293, 26_329), (1, 2, 1, 3)] {
            let rr = mantel_haenszel_risk_ratio(&[Stratum {
                events: a,
                sends: n1,
                rest_events: b,
                rest_sends: n0,
            }])
            .expect("both sides have events");
            let (af, n1f, bf, n0f) = (a as f64, n1 as f64, b as f64, n0 as f64);
            let crude = (af / n1f) / (bf / n0f);
            let usual = 1.0 / af - 1.0 / n1f + 1.0 / bf - 1.0 / n0f;
            assert!(((rr.ratio - crude) / crude).abs() < 1e-12, "{rr:?}");
            assert!(((rr.log_variance - usual) / usual).abs() < 1e-9, "{rr:?}");
        }
        // 30/200 against 10/100: RR 1.5, variance 1/30 − 1/200 + 1/10 − 1/100.
        let rr = mantel_haenszel_risk_ratio(&[Stratum {
            events: 30,
            sends: 200,
            rest_events: 10,
            rest_sends: 100,
        }])
        .expect("both sides have events");
        assert!(close(rr.log_variance, 0.118_333_333_333_333_33, 1e-12));
        assert!(close(rr.ci_low, 0.764_330_565_703_514_5, 1e-9), "{rr:?}");
        assert!(close(rr.ci_high, 2.943_752_482_185_541, 1e-9), "{rr:?}");
    }

    #[test]
    fn strata_with_an_empty_arm_or_no_events_on_a_side_give_no_ratio() {
        let one = Stratum {
            events: 30,
            sends: 200,
            rest_events: 10,
            rest_sends: 100,
        };
        let empty_arm = Stratum {
            events: 5,
            sends: 10,
            rest_events: 0,
            rest_sends: 0,
        };
        assert_eq!(
            mantel_haenszel_risk_ratio(&[one, empty_arm, Stratum::default()]),
            mantel_haenszel_risk_ratio(&[one])
        );
        assert_eq!(mantel_haenszel_risk_ratio(&[]), None);
        assert_eq!(mantel_haenszel_risk_ratio(&[empty_arm]), None);
        let no_rest_events = Stratum {
            rest_events: 0,
            ..one
        };
        assert_eq!(mantel_haenszel_risk_ratio(&[no_rest_events]), None);
        let no_events = Stratum { events: 0, ..one };
        assert_eq!(mantel_haenszel_risk_ratio(&[no_events]), None);
    }

    #[test]
    fn the_normal_always_valid_p_is_the_rate_difference_one_with_its_variance() {
        // `always_valid_p` is `always_valid_p_normal` of p1 − p2 with the
        // unpooled variance p1(1−p1)/n1 + p2(1−p2)/n2 (floored at 1e-12).
        for (x1, n1, x2, n2, tau2) in [
            (300, 2000, 200, 2000, 0.01),
            (450, 3000, 300, 3000, 0.0001),
            (120, 600, 60, 600, 0.0001),
            (7, 171, 293, 26_329, 0.0001),
            (0, 50, 0, 50, 0.0001),
            (310, 3000, 300, 3000, 0.0001),
        ] {
            let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
            let v = (p1 * (1.0 - p1) / n1 as f64 + p2 * (1.0 - p2) / n2 as f64).max(1e-12);
            let (rates, normal) = (
                always_valid_p(x1, n1, x2, n2, tau2),
                always_valid_p_normal(p1 - p2, v, tau2),
            );
            assert_eq!(rates, normal, "{x1}/{n1} against {x2}/{n2}");
            assert_eq!(always_valid_p_normal(p2 - p1, v, tau2), normal, "symmetric");
        }
    }

    #[test]
    fn the_normal_always_valid_p_follows_its_formula() {
        // θ = 0.05, V = 0.0001, τ² = 0.0001: Λ = √(1/2)·exp(0.0025·0.0001 /
        // (2·0.0001·0.0002)) = 0.7071068·exp(6.25) = 0.7071068·518.0128 =
        // 366.2904, p = 1/Λ = 0.0027301.
        let p = always_valid_p_normal(0.05, 0.0001, 0.0001);
        let want = 1.0 / (0.5f64.sqrt() * 6.25f64.exp());
        assert!(((p - want) / want).abs() < 1e-12, "{p}");
        assert!(close(p, 0.002_730_1, 1e-7), "{p}");
        // No difference: Λ = √(V/(V+τ²)) < 1, so p = 1.
        assert_eq!(always_valid_p_normal(0.0, 0.0001, 0.0001), 1.0);
        // No usable variance, estimate or mixture: nothing to say.
        for (estimate, variance, tau2) in [
            (0.1, 0.0, 0.0001),
            (0.1, -1.0, 0.0001),
            (0.1, f64::NAN, 0.0001),
            (0.1, f64::INFINITY, 0.0001),
            (f64::NAN, 0.0001, 0.0001),
            (0.1, 0.0001, 0.0),
        ] {
            assert_eq!(always_valid_p_normal(estimate, variance, tau2), 1.0);
        }
        // Overwhelming evidence floors rather than overflowing to 0.
        assert_eq!(always_valid_p_normal(1.0, 1e-12, 0.0001), SMALLEST_P);
    }
}
