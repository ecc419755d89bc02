//! Drift statistics: how far a current sample of a feature has moved from a reference sample (usually the
//! training data). Numeric features: the population stability index over quantile bins and the two-sample
//! Kolmogorov–Smirnov test. Categorical features: the PSI over categories and Pearson's chi-squared test.
//!
//! NaN values are dropped from numeric samples before anything is computed. A statistic of an empty sample is
//! NaN. The tests hold values computed independently with numpy and scipy.

use std::collections::BTreeMap;

/// The share given to an empty bin or category in the PSI, so that its logarithm is finite.
pub const PSI_EPSILON: f64 = 1e-4;

/// Population stability index of `current` against `reference`, over `bins` quantile bins of the reference.
///
/// The exact convention: the inner bin edges are the reference's quantiles at `i / bins` for
/// `i = 1..bins` (linear interpolation, numpy's default), with repeated edges merged (so a reference with many
/// ties gets fewer bins); the outer bins are open, so every value falls in a bin. A value equal to an edge
/// belongs to the bin on the edge's right (`numpy.searchsorted(edges, v, side="right")`). Each bin's share is
/// its count over the sample size, and a share of 0 becomes [`PSI_EPSILON`] (the others are left as they
/// are). `PSI = Σ (current − reference) · ln(current / reference)` over the bins. `bins` below 1 counts as 1.
pub fn psi(reference: &[f64], current: &[f64], bins: usize) -> f64 {
    let reference = sorted_finite(reference);
    let current: Vec<f64> = current.iter().copied().filter(|v| !v.is_nan()).collect();
    if reference.is_empty() || current.is_empty() {
        return f64::NAN;
    }
    let bins = bins.max(1);
    let mut edges: Vec<f64> = (1..bins).map(|i| quantile(&reference, i as f64 / bins as f64)).collect();
    edges.dedup();
    let shares = |sample: &[f64]| {
        let mut counts = vec![0usize; edges.len() + 1];
        for v in sample {
            counts[edges.partition_point(|e| e <= v)] += 1;
        }
        counts.into_iter().map(|c| c as f64 / sample.len() as f64).collect::<Vec<_>>()
    };
    psi_of_shares(&shares(&reference), &shares(&current))
}

/// Population stability index over the categories seen in either sample, with the same conventions as
/// [`psi`] (shares of 0 become [`PSI_EPSILON`]).
pub fn psi_categorical(reference: &[&str], current: &[&str]) -> f64 {
    if reference.is_empty() || current.is_empty() {
        return f64::NAN;
    }
    let table = contingency(reference, current);
    let share = |count: u64, total: usize| count as f64 / total as f64;
    let r: Vec<f64> = table.values().map(|c| share(c[0], reference.len())).collect();
    let c: Vec<f64> = table.values().map(|c| share(c[1], current.len())).collect();
    psi_of_shares(&r, &c)
}

fn psi_of_shares(reference: &[f64], current: &[f64]) -> f64 {
    let floor = |p: f64| if p == 0.0 { PSI_EPSILON } else { p };
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let (r, c) = (floor(r), floor(c));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// The result of [`ks`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// The largest distance between the two empirical distribution functions.
    pub statistic: f64,
    pub p_value: f64,
}

/// Two-sample Kolmogorov–Smirnov test, two-sided, with the asymptotic p-value exactly as
/// `scipy.stats.ks_2samp(reference, current, method="asymp")` computes it: the survival function of the
/// one-sample Kolmogorov distribution at `D` for `n = round(n1·n2 / (n1 + n2))` (scipy's `kstwo`, after
/// Simard and L'Ecuyer 2011). One departure keeps it cheap: where scipy would use the Durbin matrix with a
/// matrix larger than 100 × 100 (large samples, tiny `D`), the Pelz–Good approximation is used instead; it
/// differs from scipy there by less than 1e-6.
pub fn ks(reference: &[f64], current: &[f64]) -> KsResult {
    let a = sorted_finite(reference);
    let b = sorted_finite(current);
    if a.is_empty() || b.is_empty() {
        return KsResult { statistic: f64::NAN, p_value: f64::NAN };
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() || j < b.len() {
        // The next value of the pooled sample; both distribution functions are taken right after it.
        let v = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.min(*y),
            (Some(x), None) => *x,
            (None, Some(y)) => *y,
            (None, None) => break,
        };
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / n1 - j as f64 / n2).abs());
    }
    let en = n1 * n2 / (n1 + n2);
    KsResult { statistic: d, p_value: kolmogorov::sf(en.round_ties_even() as u64, d) }
}

/// The result of [`chi_squared`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquaredResult {
    pub statistic: f64,
    /// Degrees of freedom: the number of categories seen, minus one.
    pub dof: usize,
    pub p_value: f64,
}

/// Pearson's chi-squared test that two samples of a categorical feature come from the same distribution:
/// the 2 × k table of category counts (categories seen in either sample), without continuity correction,
/// as `scipy.stats.chi2_contingency(table, correction=False)`. One category gives statistic 0, p-value 1.
pub fn chi_squared(reference: &[&str], current: &[&str]) -> ChiSquaredResult {
    if reference.is_empty() || current.is_empty() {
        return ChiSquaredResult { statistic: f64::NAN, dof: 0, p_value: f64::NAN };
    }
    let table = contingency(reference, current);
    let totals = [reference.len() as f64, current.len() as f64];
    let n = totals[0] + totals[1];
    let statistic: f64 = table
        .values()
        .map(|counts| {
            let column = (counts[0] + counts[1]) as f64;
            (0..2)
                .map(|s| {
                    let expected = totals[s] * column / n;
                    (counts[s] as f64 - expected).powi(2) / expected
                })
                .sum::<f64>()
        })
        .sum();
    let dof = table.len() - 1;
    let p_value = if dof == 0 { 1.0 } else { gamma::upper_regularized(dof as f64 / 2.0, statistic / 2.0) };
    ChiSquaredResult { statistic: if dof == 0 { 0.0 } else { statistic }, dof, p_value }
}

/// Category → [count in reference, count in current].
fn contingency<'a>(reference: &[&'a str], current: &[&'a str]) -> BTreeMap<&'a str, [u64; 2]> {
    let mut table: BTreeMap<&str, [u64; 2]> = BTreeMap::new();
    for (sample, values) in [reference, current].into_iter().enumerate() {
        for v in values {
            table.entry(v).or_default()[sample] += 1;
        }
    }
    table
}

fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// numpy's default (linear) quantile of sorted, non-empty `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The regularized incomplete gamma function, for chi-squared p-values.
mod gamma {
    /// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error about 1e-15).
    pub(super) fn ln_gamma(x: f64) -> f64 {
        const G: [f64; 9] = [
            0.999_999_999_999_809_9,
            676.520_368_121_885_1,
            -1_259.139_216_722_402_8,
            771.323_428_777_653_1,
            -176.615_029_162_140_6,
            12.507_343_278_686_905,
            -0.138_571_095_265_720_12,
            9.984_369_578_019_572e-6,
            1.505_632_735_149_311_6e-7,
        ];
        if x < 0.5 {
            // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
            return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
        }
        let x = x - 1.0;
        let t = x + 7.5;
        let sum = G[1..].iter().enumerate().fold(G[0], |s, (i, g)| s + g / (x + i as f64 + 1.0));
        0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
    }

    /// Q(a, x) = Γ(a, x) / Γ(a): the chi-squared survival function at `2x` with `2a` degrees of freedom.
    pub(super) fn upper_regularized(a: f64, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        if x <= 0.0 {
            return 1.0;
        }
        let log_prefix = a * x.ln() - x - ln_gamma(a);
        if x < a + 1.0 {
            // Series for P(a, x).
            let (mut term, mut sum, mut k) = (1.0 / a, 1.0 / a, a);
            for _ in 0..10_000 {
                k += 1.0;
                term *= x / k;
                sum += term;
                if term.abs() < sum.abs() * 1e-17 {
                    break;
                }
            }
            (1.0 - sum * log_prefix.exp()).clamp(0.0, 1.0)
        } else {
            // Continued fraction for Q(a, x) (modified Lentz).
            let tiny = 1e-300;
            let mut b = x + 1.0 - a;
            let mut c = 1.0 / tiny;
            let mut d = 1.0 / b;
            let mut h = d;
            for i in 1..10_000 {
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
                if (delta - 1.0).abs() < 1e-16 {
                    break;
                }
            }
            (log_prefix.exp() * h).clamp(0.0, 1.0)
        }
    }
}

/// The distribution of the one-sample two-sided Kolmogorov statistic `D_n`, ported from scipy's
/// `scipy/stats/_ksstats.py` (`_kolmogn` with `cdf=False`) and cephes' `smirnov`.
mod kolmogorov {
    use std::f64::consts::PI;

    use super::gamma::ln_gamma;

    /// The largest Durbin matrix used; larger ones fall back to Pelz–Good (see [`super::ks`]).
    const MAX_DURBIN_MATRIX: usize = 100;

    /// P(D_n ≥ x).
    pub(super) fn sf(n: u64, x: f64) -> f64 {
        if n == 0 || x.is_nan() {
            return f64::NAN;
        }
        let nf = n as f64;
        if x >= 1.0 {
            return 0.0;
        }
        if x <= 0.0 {
            return 1.0;
        }
        let t = nf * x;
        let p = if t <= 1.0 {
            // Ruben–Gambino: P(D_n ≤ x) = n!/n^n (2t − 1)^n for 1/2n ≤ x ≤ 1/n.
            if t <= 0.5 {
                return 1.0;
            }
            let cdf = if n <= 140 {
                (1..=n).fold(1.0, |p, i| p * (i as f64 / nf) * (2.0 * t - 1.0))
            } else {
                (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
            };
            1.0 - cdf
        } else if t >= nf - 1.0 {
            2.0 * (1.0 - x).powf(nf)
        } else if x >= 0.5 {
            2.0 * smirnov(n, x)
        } else {
            let nxsquared = t * x;
            if n <= 140 {
                if nxsquared <= 0.754693 {
                    1.0 - durbin(n, x)
                } else if nxsquared <= 4.0 {
                    1.0 - pomeranz(n, x)
                } else {
                    2.0 * smirnov(n, x)
                }
            } else if nxsquared >= 370.0 {
                0.0
            } else if nxsquared >= 2.2 {
                2.0 * smirnov(n, x)
            } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 && 2 * (t.ceil() as usize) - 1 <= MAX_DURBIN_MATRIX {
                1.0 - durbin(n, x)
            } else {
                1.0 - pelz_good(nf, x)
            }
        };
        p.clamp(0.0, 1.0)
    }

    /// ln(n! / n^n) by Stirling's series, without the cancellation of computing both.
    fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
        // B_2j / (2j (2j - 1)) for j = 8, ..., 1, B the Bernoulli numbers.
        const STIRLING: [f64; 8] = [
            -3617.0 / 122_400.0,
            1.0 / 156.0,
            -691.0 / 360_360.0,
            1.0 / 1188.0,
            -1.0 / 1680.0,
            1.0 / 1260.0,
            -1.0 / 360.0,
            1.0 / 12.0,
        ];
        let rn = 1.0 / n;
        let poly = STIRLING.iter().fold(0.0, |acc, c| acc * (rn / n) + c);
        n.ln() / 2.0 - n + (2.0 * PI).ln() / 2.0 + rn * poly
    }

    /// The exact one-sided Smirnov survival function P(D_n⁺ ≥ x) (Birnbaum and Tingey), summed in log space:
    /// x · Σ_{j=0}^{⌊n(1−x)⌋} C(n, j) (x + j/n)^(j−1) (1 − x − j/n)^(n−j).
    fn smirnov(n: u64, x: f64) -> f64 {
        let nf = n as f64;
        let last = (nf * (1.0 - x)).floor() as u64;
        let ln_n_fact = ln_gamma(nf + 1.0);
        let mut terms = Vec::with_capacity(last as usize + 1);
        for j in 0..=last {
            let jf = j as f64;
            let rest = 1.0 - x - jf / nf;
            if rest <= 0.0 && j < n {
                continue;
            }
            let ln_choose = ln_n_fact - ln_gamma(jf + 1.0) - ln_gamma(nf - jf + 1.0);
            let ln_rest = if j == n { 0.0 } else { (nf - jf) * rest.ln() };
            terms.push(ln_choose + (jf - 1.0) * (x + jf / nf).ln() + ln_rest);
        }
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            return 0.0;
        }
        let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
        (x.ln() + max + sum.ln()).exp().clamp(0.0, 1.0)
    }

    /// P(D_n ≤ d) by the Durbin matrix (Marsaglia, Tsang and Wang 2003).
    fn durbin(n: u64, d: f64) -> f64 {
        let nd = n as f64 * d;
        if d >= 1.0 {
            return 1.0;
        }
        if nd <= 0.5 {
            return 0.0;
        }
        let k = nd.ceil() as usize;
        let h = k as f64 - nd;
        let m = 2 * k - 1;
        let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powi(j as i32)).collect();
        let mut w = vec![0.0; m];
        let mut fac = 1.0;
        for j in 1..=m {
            w[j - 1] = fac;
            fac /= j as f64;
            v[j - 1] *= fac;
        }
        let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
        v[m - 1] = (1.0 + tt) * fac;
        let mut hm = vec![0.0; m * m];
        for i in 1..m {
            for r in (i - 1)..m {
                hm[r * m + i] = w[r - (i - 1)];
            }
        }
        for r in 0..m {
            hm[r * m] = v[r];
        }
        for c in 0..m {
            hm[(m - 1) * m + c] = v[m - 1 - c];
        }
        let scale = 2f64.powi(128);
        let mut power: Vec<f64> = (0..m * m).map(|i| if i % (m + 1) == 0 { 1.0 } else { 0.0 }).collect();
        let (mut nn, mut exponent, mut h_exponent) = (n, 0i32, 0i32);
        while nn > 0 {
            if nn % 2 == 1 {
                power = matmul(&power, &hm, m);
                exponent += h_exponent;
            }
            hm = matmul(&hm, &hm, m);
            h_exponent *= 2;
            if hm[(k - 1) * m + k - 1].abs() > scale {
                hm.iter_mut().for_each(|e| *e /= scale);
                h_exponent += 128;
            }
            nn /= 2;
        }
        let mut p = power[(k - 1) * m + k - 1];
        for i in 1..=n {
            p = i as f64 * p / n as f64;
            if p.abs() < 1.0 / scale {
                p *= scale;
                exponent -= 128;
            }
        }
        p * 2f64.powi(exponent)
    }

    fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
        let mut out = vec![0.0; m * m];
        for i in 0..m {
            for l in 0..m {
                let a_il = a[i * m + l];
                if a_il == 0.0 {
                    continue;
                }
                for j in 0..m {
                    out[i * m + j] += a_il * b[l * m + j];
                }
            }
        }
        out
    }

    /// P(D_n ≤ x) by the Pomeranz recursion (n ≤ 140 here).
    fn pomeranz(n: u64, x: f64) -> f64 {
        let nf = n as f64;
        let n = n as i64;
        let t = nf * x;
        let ll = t.floor() as i64;
        let f = t - ll as f64;
        let g = f.min(1.0 - f);
        let ceilf = i64::from(f > 0.0);
        let roundf = i64::from(f > 0.5);
        let npwrs = (2 * (ll + 1)) as usize;
        let mut gpower = vec![1.0; npwrs];
        let mut twogpower = vec![1.0; npwrs];
        let mut onem2gpower = vec![1.0; npwrs];
        for m in 1..npwrs {
            let mf = m as f64;
            gpower[m] = gpower[m - 1] * (g / nf) / mf;
            twogpower[m] = twogpower[m - 1] * (2.0 * g / nf) / mf;
            onem2gpower[m] = onem2gpower[m - 1] * ((1.0 - 2.0 * g) / nf) / mf;
        }
        let j1j2 = |i: i64| -> (i64, i64) {
            let (j1, j2) = if i == 0 {
                (-ll - ceilf - 1, ll + ceilf - 1)
            } else {
                let (ip1div2, ip1mod2) = ((i + 1) / 2, (i + 1) % 2);
                if ip1mod2 == 0 {
                    if ip1div2 == n + 1 {
                        (n - ll - ceilf - 1, n + ll + ceilf - 1)
                    } else {
                        (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
                    }
                } else {
                    (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
                }
            };
            ((j1 + 2).max(0), j2.min(n))
        };
        let scale = 2f64.powi(128);
        let mut v0 = vec![0.0; npwrs];
        let mut v1 = vec![0.0; npwrs];
        v1[0] = 1.0;
        let (mut v0s, mut v1s) = (0i64, 0i64);
        let mut exponent = 0i32;
        let (mut j1, _) = j1j2(0);
        for i in 1..(2 * n + 2) {
            let k1 = j1;
            std::mem::swap(&mut v0, &mut v1);
            std::mem::swap(&mut v0s, &mut v1s);
            v1.fill(0.0);
            let (nj1, j2) = j1j2(i);
            j1 = nj1;
            let pwrs = if i == 1 || i == 2 * n + 1 {
                &gpower
            } else if i % 2 == 1 {
                &twogpower
            } else {
                &onem2gpower
            };
            let ln2 = j2 - k1 + 1;
            if ln2 > 0 {
                let ln2 = ln2 as usize;
                let start = (k1 - v0s) as usize;
                let a = &v0[start..start + ln2];
                let conv_start = (j1 - k1) as usize;
                let conv_len = (j2 - j1 + 1) as usize;
                for (out, c) in v1.iter_mut().take(conv_len).zip(conv_start..) {
                    // Entry c of the full convolution of a and pwrs[..ln2].
                    let lo = c.saturating_sub(ln2 - 1);
                    *out = (lo..=c.min(ln2 - 1)).map(|q| a[q] * pwrs[c - q]).sum();
                }
                let max = v1.iter().copied().fold(0.0, f64::max);
                if max > 0.0 && max < 1.0 / scale {
                    v1.iter_mut().for_each(|e| *e *= scale);
                    exponent -= 128;
                }
                v1s = v0s + j1 - k1;
            }
        }
        let mut ans = v1[(n - v1s) as usize];
        for m in 1..=n {
            if ans.abs() > scale {
                ans /= scale;
                exponent += 128;
            }
            ans *= m as f64;
        }
        ans * 2f64.powi(exponent)
    }

    /// P(D_n ≤ x) by the Pelz–Good approximation.
    fn pelz_good(n: f64, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        if x >= 1.0 {
            return 1.0;
        }
        let z = n.sqrt() * x;
        let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
        let qlog = -PI * PI / 8.0 / z2;
        if qlog < -708.0 {
            return 0.0;
        }
        let q = qlog.exp();
        let (pi2, pi4, pi6) = (PI * PI, PI.powi(4), PI.powi(6));
        let k1a = -z2;
        let k1b = pi2 / 4.0;
        let k2a = 6.0 * z6 + 2.0 * z4;
        let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
        let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
        let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
        let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
        let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
        let k3a = -30.0 * z6 - 90.0 * z.powi(8);
        let mut k = [0.0f64; 4];
        let maxk = (16.0 * z / PI).ceil() as i64;
        for kk in (1..=maxk).rev() {
            let m = (2 * kk - 1) as f64;
            let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
            let qpower = q.powf(8.0 * kk as f64);
            let coeffs = [1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6];
            for (k, c) in k.iter_mut().zip(coeffs) {
                *k = *k * qpower + c;
            }
        }
        let sqrt2pi = (2.0 * PI).sqrt();
        let divisors = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
        for (k, d) in k.iter_mut().zip(divisors) {
            *k = *k * q * sqrt2pi / d;
        }
        let q = (-pi2 / 2.0 / z2).exp();
        let sqrt3z = 3f64.sqrt() * z;
        let (mut k2extra, mut k3extra) = (0.0, 0.0);
        for kk in (1..=maxk).rev() {
            let ks = kk as f64;
            let ksq = ks * ks;
            let qp = q.powf(ksq);
            let kspi = PI * ks;
            k2extra += ksq * qp;
            k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
        }
        k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
        k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
        k.iter().enumerate().map(|(i, v)| v / n.powf(i as f64 / 2.0)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tolerance: f64) {
        assert!((got - want).abs() <= tolerance * want.abs().max(1e-300), "got {got:e}, want {want:e}");
    }

    // ref and cur of the Python script below.
    const REF: [f64; 16] = [1.2, 3.4, 2.2, 5.1, 4.4, 3.3, 2.8, 1.9, 4.0, 3.7, 2.5, 3.1, 4.8, 2.0, 3.9, 3.0];
    const CUR: [f64; 12] = [2.9, 4.1, 5.5, 3.8, 4.6, 6.0, 3.5, 4.9, 5.2, 4.3, 3.6, 5.8];

    // Reference values from numpy 2 / scipy 1.17:
    //   def psi(ref, cur, bins):
    //       edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    //       r = np.bincount(np.searchsorted(edges, ref, side='right'), minlength=len(edges)+1) / len(ref)
    //       c = np.bincount(np.searchsorted(edges, cur, side='right'), minlength=len(edges)+1) / len(cur)
    //       r = np.where(r == 0, 1e-4, r); c = np.where(c == 0, 1e-4, c)
    //       return float(np.sum((c - r) * np.log(c / r)))
    //   psi(ref, cur, 4) == 2.547010001645891; psi(ref, cur, 10) == 4.0311998420755755
    #[test]
    fn psi_matches_numpy() {
        close(psi(&REF, &CUR, 4), 2.547010001645891, 1e-12);
        close(psi(&REF, &CUR, 10), 4.0311998420755755, 1e-12);
        assert_eq!(psi(&REF, &REF, 4), 0.0);
        assert!(psi(&[], &CUR, 4).is_nan());
    }

    // big_a = np.sin(np.arange(1000) * 1.3); big_b = np.sin(np.arange(800) * 0.7) * 1.1 + 0.05
    fn big() -> (Vec<f64>, Vec<f64>) {
        let a = (0..1000).map(|i| (i as f64 * 1.3).sin()).collect();
        let b = (0..800).map(|i| (i as f64 * 0.7).sin() * 1.1 + 0.05).collect();
        (a, b)
    }

    // psi(big_a, big_b, 10) == 0.09486880660875815
    #[test]
    fn psi_matches_numpy_on_a_larger_sample() {
        let (a, b) = big();
        close(psi(&a, &b, 10), 0.09486880660875815, 1e-9);
    }

    // scipy.stats.ks_2samp(ref, cur, method='asymp') == (0.5416666666666666, 0.018886411947373016)
    // scipy.stats.ks_2samp(big_a, big_b, method='asymp') == (0.16500000000000004, 4.9467373144138335e-11)
    #[test]
    fn ks_matches_scipy_asymp() {
        let r = ks(&REF, &CUR);
        close(r.statistic, 0.5416666666666666, 1e-12);
        close(r.p_value, 0.018886411947373016, 1e-9);
        let (a, b) = big();
        let r = ks(&a, &b);
        close(r.statistic, 0.16500000000000004, 1e-12);
        close(r.p_value, 4.9467373144138335e-11, 1e-6);
        let same = ks(&REF, &REF);
        assert_eq!((same.statistic, same.p_value), (0.0, 1.0));
    }

    // scipy.stats.kstwo.sf(x, n) for each (n, x): every branch of scipy's _kolmogn (Ruben–Gambino, exact
    // Smirnov, Durbin matrix, Pomeranz, Pelz–Good).
    #[test]
    fn kolmogorov_sf_matches_scipy_kstwo() {
        let table = [
            (4, 0.3, 0.7708),
            (4, 0.7, 0.016900000000000012),
            (10, 0.05, 1.0),
            (10, 0.15, 0.95396527),
            (10, 0.25, 0.4841115325000003),
            (10, 0.5, 0.00777741),
            (10, 0.95, 1.9531250000000172e-13),
            (25, 0.1, 0.9426821978135055),
            (25, 0.3, 0.0171781183234907),
            (25, 0.6, 3.890920667402015e-09),
            (100, 0.08, 0.5182193645480672),
            (140, 0.2, 2.1981563302200222e-05),
            (141, 0.02, 0.9999999744561288),
            (500, 0.03, 0.7473166700457021),
            (1000, 0.01, 0.9999496745370611),
            (1000, 0.02, 0.8108971656895577),
            (1000, 0.05, 0.013012074781090332),
            (1000, 0.1, 3.703687096817711e-09),
            (5000, 0.015, 0.20846142096186204),
            (200000, 0.002, 0.39995085369038097),
            (200000, 0.004, 0.003314212822560255),
            (2000, 0.2, 1.3550654457041708e-70),
            // Past the Durbin matrix size limit (scipy: Durbin; here: Pelz–Good).
            (90000, 0.0006, 0.9999999999999994),
        ];
        for (n, x, want) in table {
            let got = kolmogorov::sf(n, x);
            assert!(
                (got - want).abs() <= 1e-9 * want.max(1e-300) || (got - want).abs() < 1e-15,
                "kstwo.sf({x}, {n}): got {got:e}, want {want:e}"
            );
        }
    }

    // rc = ["a"]*50 + ["b"]*30 + ["c"]*20; cc = ["a"]*30 + ["b"]*30 + ["c"]*25 + ["d"]*5
    // table = [[50, 30, 20, 0], [30, 30, 25, 5]]
    // scipy.stats.chi2_contingency(table, correction=False) -> statistic 10.057098765432098, dof 3,
    //   p 0.018086958782689507
    // PSI over the category shares with zero shares -> 1e-4: 0.4471172221141507
    fn categorical() -> (Vec<&'static str>, Vec<&'static str>) {
        let rep = |s, n| std::iter::repeat_n(s, n);
        let r = rep("a", 50).chain(rep("b", 30)).chain(rep("c", 20)).collect();
        let c = rep("a", 30).chain(rep("b", 30)).chain(rep("c", 25)).chain(rep("d", 5)).collect();
        (r, c)
    }

    #[test]
    fn chi_squared_matches_scipy() {
        let (r, c) = categorical();
        let result = chi_squared(&r, &c);
        close(result.statistic, 10.057098765432098, 1e-12);
        assert_eq!(result.dof, 3);
        close(result.p_value, 0.018086958782689507, 1e-9);
        let one = chi_squared(&["a", "a"], &["a"]);
        assert_eq!((one.statistic, one.dof, one.p_value), (0.0, 0, 1.0));
    }

    #[test]
    fn psi_categorical_matches_numpy() {
        let (r, c) = categorical();
        close(psi_categorical(&r, &c), 0.4471172221141507, 1e-12);
        assert_eq!(psi_categorical(&r, &r), 0.0);
    }
}
