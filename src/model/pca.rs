//! The PCA baseline: fitted with linfa-reduction on the same training windows as the
//! autoencoder, scored by projecting onto the components and mapping back.
//!
//! linfa fits; scoring uses the extracted mean and component matrix with plain loops so
//! that a window is scored without allocating (linfa's `predict` allocates per call).
//!
//! linfa's PCA is a truncated SVD by LOBPCG, and each of its iterations multiplies the
//! whole `rows × inputs` matrix twice. The principal directions depend on the rows only
//! through their covariance matrix, so many rows are first compacted into `2 × inputs`
//! rows with the same covariance (`compact_rows`); linfa fits those.

use linfa::Dataset;
use linfa::traits::Fit;
use linfa_linalg::cholesky::CholeskyInplace;
use linfa_linalg::eigh::{EigSort, Eigh};
use linfa_reduction::Pca;
use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::ModelError;

/// A fitted PCA reconstruction model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PcaModel {
    /// Per-input mean of the training windows.
    mean: Array1<f64>,
    /// `components × inputs`, orthonormal rows.
    components: Array2<f64>,
}

impl PcaModel {
    /// Fits `components` principal components to `data` (`rows × inputs`).
    ///
    /// Data without enough variance for the requested components (a flat line, say)
    /// falls back to as many components as linfa can find, down to zero, in which case
    /// the reconstruction is the training mean. A degenerate signal is still scored.
    ///
    /// # Errors
    ///
    /// [`ModelError::TooFewRows`] for empty data, [`ModelError::InvalidParams`] when
    /// `components` is not below the number of inputs.
    pub fn fit(data: ArrayView2<'_, f64>, components: usize) -> Result<Self, ModelError> {
        let (rows, inputs) = data.dim();
        if rows < 2 {
            return Err(ModelError::TooFewRows { needed: 2, got: rows });
        }
        if components == 0 || components >= inputs {
            return Err(ModelError::InvalidParams(format!(
                "pca components must be in 1..{inputs}, got {components}"
            )));
        }
        let mean = data.mean_axis(ndarray::Axis(0)).expect("rows >= 2");
        let spread = data
            .iter()
            .zip(mean.iter().cycle())
            .map(|(x, m)| (x - m).abs())
            .fold(0.0, f64::max);
        if spread < 1e-12 {
            return Ok(Self::mean_only(mean));
        }
        // Sliding windows of a smooth signal are nearly collinear, and linfa's LOBPCG
        // then sometimes produces NaN and panics inside its eigen solver (seen on 4 of
        // NAB's 58 files). The panic is caught so that no input can take the detector
        // down, and the exact dense eigen-decomposition of the covariance (tiny here:
        // inputs × inputs) takes over.
        let dataset = Dataset::from(compact_rows(data, &mean).unwrap_or_else(|| data.to_owned()));
        quiet_linfa_panics();
        let fitted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pca::params(components).fit(&dataset)
        }));
        if let Ok(Ok(pca)) = fitted {
            let comps = pca.components().clone();
            if comps.iter().all(|v| v.is_finite()) {
                return Ok(Self {
                    mean,
                    components: comps,
                });
            }
        }
        if let Some(components) = exact_components(data, &mean, components) {
            return Ok(Self { mean, components });
        }
        Ok(Self::mean_only(mean))
    }

    fn mean_only(mean: Array1<f64>) -> Self {
        let inputs = mean.len();
        Self {
            mean,
            components: Array2::zeros((0, inputs)),
        }
    }

    /// Number of inputs (window length × channels).
    pub fn n_inputs(&self) -> usize {
        self.mean.len()
    }

    /// Number of components actually kept (may be fewer than asked, see [`Self::fit`]).
    pub fn n_components(&self) -> usize {
        self.components.nrows()
    }

    /// The training mean window: what the trivial baseline, a "model" that always
    /// predicts the average window, reconstructs every window as.
    pub fn mean(&self) -> &[f64] {
        self.mean.as_slice().expect("owned arrays are contiguous")
    }

    /// What the principal subspace leaves of each row of `data`: `x − reconstruction`
    /// (the linear skip path's residual, see [`super::Model::residual`]).
    pub fn residuals(&self, data: ArrayView2<'_, f64>) -> Array2<f64> {
        let centred = &data - &self.mean;
        let codes = centred.dot(&self.components.t());
        centred - codes.dot(&self.components)
    }

    /// Reconstructs one window: `mean + Cᵀ C (x − mean)`. No allocation once
    /// `scratch` has grown to the number of components.
    ///
    /// # Panics
    ///
    /// If `x` or `out` is not [`Self::n_inputs`] long (a programming error).
    pub fn reconstruct_into(&self, x: &[f64], out: &mut [f64], scratch: &mut Vec<f64>) {
        let n = self.n_inputs();
        assert!(x.len() == n && out.len() == n, "pca input length mismatch");
        let mean = self.mean();
        scratch.clear();
        // Two components' codes in one pass: two independent sums, each added in the
        // same order as alone (the same bits), instead of one latency-bound sum after
        // the other.
        let rows = self
            .components
            .as_slice()
            .expect("components are fitted row-major");
        let mut pairs = rows.chunks_exact(2 * n);
        for pair in &mut pairs {
            let (a, b) = pair.split_at(n);
            let (mut code_a, mut code_b) = (0.0, 0.0);
            for ((ca, cb), (x, m)) in a.iter().zip(b).zip(x.iter().zip(mean)) {
                code_a += ca * (x - m);
                code_b += cb * (x - m);
            }
            scratch.extend([code_a, code_b]);
        }
        let last = pairs.remainder();
        if !last.is_empty() {
            scratch.push(last.iter().zip(x).zip(mean).map(|((c, x), m)| c * (x - m)).sum());
        }
        out.copy_from_slice(mean);
        for (row, code) in self.components.rows().into_iter().zip(scratch.iter()) {
            let row = row.to_slice().expect("owned arrays are contiguous");
            for (o, c) in out.iter_mut().zip(row) {
                *o += code * c;
            }
        }
    }
}

/// The top `k` principal axes from the dense eigen-decomposition of the covariance, as
/// rows; `None` if the solver fails.
/// Rows compacted when there are at least this many times as many rows as inputs: below
/// it the scatter matrix costs about what the iterations it saves do.
const COMPACT_FROM: usize = 4;

/// `2 × inputs` rows with the covariance of `data`'s rows, or `None` when `data` has too
/// few rows to gain (or the factorisation fails). With `C = Xcᵀ Xc / (rows − 1)` and its
/// Cholesky factor `C + εI = L Lᵀ`, the rows of `Lᵀ` and of `−Lᵀ`, scaled by `1/√2`, have
/// `RᵀR = C + εI`: the principal directions of `data` (the `ε`, a hair of the trace that
/// makes a rank-deficient `C` factorable, moves every eigenvalue alike and no
/// eigenvector), and a mean of exactly zero, so linfa's centring leaves them alone. The
/// covariance rather than the scatter `Xcᵀ Xc`: the same eigenvectors, with eigenvalues
/// the size of a normalised window's variance instead of `rows` times it, which linfa's
/// absolute tolerance reaches in fewer iterations.
fn compact_rows(data: ArrayView2<'_, f64>, mean: &Array1<f64>) -> Option<Array2<f64>> {
    let (rows, inputs) = data.dim();
    if rows < COMPACT_FROM * inputs {
        return None;
    }
    let centred = &data - mean;
    let mut cov = centred.t().dot(&centred) / (rows - 1) as f64;
    let jitter = 1e-10 * cov.diag().sum() / inputs as f64 + f64::MIN_POSITIVE;
    cov.diag_mut().mapv_inplace(|v| v + jitter);
    let lower = cov.cholesky_into().ok()?;
    let half = lower.t().mapv(|v| v * std::f64::consts::FRAC_1_SQRT_2);
    let compact = ndarray::concatenate![ndarray::Axis(0), half, -&half];
    compact.iter().all(|v| v.is_finite()).then_some(compact)
}

fn exact_components(data: ArrayView2<'_, f64>, mean: &Array1<f64>, k: usize) -> Option<Array2<f64>> {
    let centred = &data - mean;
    let cov = centred.t().dot(&centred) / (data.nrows() as f64 - 1.0);
    let (_, vectors) = cov.eigh().ok()?.sort_eig_desc();
    let top = vectors.slice(ndarray::s![.., ..k]).t().to_owned();
    top.iter().all(|v| v.is_finite()).then_some(top)
}

/// A panic inside linfa-linalg is an expected, handled event here (the fit above
/// catches it and uses the exact solver), so it is logged at debug level instead of
/// printing a backtrace. Installed once, process-wide, the first time a PCA is fitted;
/// every other panic still goes to the hook that was in place before.
fn quiet_linfa_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.location().is_some_and(|l| l.file().contains("linfa-linalg")) {
                tracing::debug!(%info, "linfa solver panic caught; exact PCA fallback used.");
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn build_rank_k(rows: usize, inputs: usize, k: usize, seed: u64) -> Array2<f64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let basis = Array2::from_shape_fn((k, inputs), |_| rng.gen_range(-1.0..1.0));
        let codes = Array2::from_shape_fn((rows, k), |_| rng.gen_range(-3.0..3.0));
        codes.dot(&basis) + 5.0
    }

    fn mse(model: &PcaModel, data: ArrayView2<'_, f64>) -> f64 {
        let mut out = vec![0.0; model.n_inputs()];
        let mut scratch = Vec::new();
        let mut total = 0.0;
        for row in data.rows() {
            let x = row.to_vec();
            model.reconstruct_into(&x, &mut out, &mut scratch);
            total += x.iter().zip(&out).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / x.len() as f64;
        }
        total / data.nrows() as f64
    }

    #[test]
    fn rank_k_data_is_reconstructed_exactly_with_k_components() {
        let data = build_rank_k(200, 12, 3, 7);
        let model = PcaModel::fit(data.view(), 3).unwrap();
        assert_eq!(model.n_components(), 3);
        let err = mse(&model, data.view());
        assert!(err < 1e-10, "rank-3 data with 3 components left error {err}");
    }

    #[test]
    fn exact_fallback_agrees_with_linfa_on_rank_k_data() {
        let data = build_rank_k(200, 12, 3, 7);
        let mean = data.mean_axis(ndarray::Axis(0)).unwrap();
        let model = PcaModel {
            components: exact_components(data.view(), &mean, 3).unwrap(),
            mean,
        };
        assert!(mse(&model, data.view()) < 1e-10);
    }

    /// Sliding windows of a noisy sine: nearly collinear rows, as NAB's are.
    fn sliding_windows(rows: usize, width: usize) -> Array2<f64> {
        let mut rng = SmallRng::seed_from_u64(3);
        let signal: Vec<f64> = (0..rows + width)
            .map(|t| (t as f64 * 0.05).sin() + 0.05 * rng.gen_range(-1.0..1.0))
            .collect();
        Array2::from_shape_fn((rows, width), |(r, c)| signal[r + c])
    }

    #[test]
    fn compacted_rows_keep_the_covariance_with_zero_mean() {
        let data = sliding_windows(400, 16);
        let mean = data.mean_axis(ndarray::Axis(0)).unwrap();
        let compact = compact_rows(data.view(), &mean).expect("400 rows of 16 are compacted");
        assert_eq!(compact.dim(), (32, 16));
        let centred = &data - &mean;
        let cov = centred.t().dot(&centred) / 399.0;
        let largest = cov.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let diff = &compact.t().dot(&compact) - &cov;
        assert!(diff.iter().all(|d| d.abs() <= 1e-8 * largest), "{diff}");
        let compact_mean = compact.mean_axis(ndarray::Axis(0)).unwrap();
        assert!(compact_mean.iter().all(|&m| m.abs() < 1e-12), "{compact_mean}");
        assert!(
            compact_rows(data.slice(ndarray::s![..63, ..]), &mean).is_none(),
            "too few rows"
        );
    }

    #[test]
    fn the_pca_of_compacted_rows_spans_the_exact_principal_subspace() {
        let data = sliding_windows(2000, 32);
        let model = PcaModel::fit(data.view(), 2).unwrap();
        let exact = exact_components(data.view(), &model.mean, 2).unwrap();
        // The projectors onto the two subspaces agree (the components' signs may not).
        let diff = &model.components.t().dot(&model.components) - &exact.t().dot(&exact);
        assert!(diff.iter().all(|d| d.abs() < 1e-6), "{diff}");
    }

    #[test]
    fn fewer_components_than_rank_leave_error() {
        let data = build_rank_k(200, 12, 3, 7);
        let model = PcaModel::fit(data.view(), 2).unwrap();
        assert!(mse(&model, data.view()) > 1e-3);
    }

    #[test]
    fn constant_data_falls_back_to_the_mean() {
        let data = Array2::from_elem((50, 8), 3.5);
        let model = PcaModel::fit(data.view(), 2).unwrap();
        assert_eq!(model.n_components(), 0);
        assert_eq!(mse(&model, data.view()), 0.0);
    }

    #[test]
    fn components_must_be_below_inputs() {
        let data = build_rank_k(20, 4, 2, 1);
        let err = PcaModel::fit(data.view(), 4).unwrap_err();
        assert!(
            err.to_string().contains("pca components must be in 1..4, got 4"),
            "{err}"
        );
    }
}
