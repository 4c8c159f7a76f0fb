//! The CPU convolution every network here runs, with bias and activation
//! done in the same pass. candle 0.11 splits a grouped convolution into one
//! convolution per group (a depthwise layer of 960 channels becomes 960
//! tiny convolutions) and converts layouts around each call; this kernel
//! runs a depthwise layer as one loop over channels and an ordinary one as
//! im2col + one GEMM straight into the output, and a 3x3 stride-1 one as
//! Winograd F(2x2, 3x3): MobileNetV2's forward pass went from 115 to 14 ms
//! and ResNet-18's from 89 to 28-30 ms, level with PyTorch (bench/vision.sh,
//! 2 threads). The loops around the GEMMs run per plane, compiled for the
//! kernel path [`crate::kernels`] chose (AVX-512 or AVX2 registers).

use std::cell::RefCell;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::layers::Activation;
use crate::kernels::{self, KernelPath, multiversion};

/// Stride, padding, groups and activation of one convolution; the weight
/// `(cout, cin / groups, k, k)` and bias `(cout)` are the op's other inputs.
/// With `winograd`, the weight is [`winograd_weights`]' `(16, cout, cin)`
/// instead (3x3, stride 1, padding 1 only).
#[derive(Clone, Copy, Debug)]
pub struct Conv2d {
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    pub activation: Activation,
    pub winograd: bool,
}

/// Whether a convolution can run as Winograd F(2x2, 3x3): 2.25 times fewer
/// multiplications for the 3x3 stride-1 layers that dominate ResNets.
pub fn winograd_fits(kernel: usize, stride: usize, padding: usize, groups: usize) -> bool {
    kernel == 3 && stride == 1 && padding == 1 && groups == 1
}

/// `G g Gᵀ` for every 3x3 filter: `(cout, cin, 3, 3)` -> `(16, cout, cin)`.
pub fn winograd_weights(weight: &Tensor) -> Result<Tensor> {
    let (cout, cin, _, _) = weight.dims4()?;
    let g = weight.flatten_all()?.to_vec1::<f32>()?;
    let mut u = vec![0f32; 16 * cout * cin];
    for (filter, g) in g.chunks_exact(9).enumerate() {
        // G g: 4x3, rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2 over the filter's rows.
        let mut gg = [[0f32; 3]; 4];
        for c in 0..3 {
            let (a, b, d) = (g[c], g[3 + c], g[6 + c]);
            gg[0][c] = a;
            gg[1][c] = (a + b + d) * 0.5;
            gg[2][c] = (a - b + d) * 0.5;
            gg[3][c] = d;
        }
        for (r, row) in gg.iter().enumerate() {
            let (a, b, d) = (row[0], row[1], row[2]);
            let out = [a, (a + b + d) * 0.5, (a - b + d) * 0.5, d];
            for (c, v) in out.into_iter().enumerate() {
                u[(r * 4 + c) * cout * cin + filter] = v;
            }
        }
    }
    Tensor::from_vec(u, (16, cout, cin), weight.device())
}

/// The 4x4 input tile whose top-left corner is `(y - 1, x - 1)`, zeros
/// outside the plane (the padding of 1).
#[inline(always)]
fn tile(plane: &[f32], h: usize, w: usize, y: usize, x: usize) -> [[f32; 4]; 4] {
    if y >= 1 && x >= 1 && y + 3 <= h && x + 3 <= w {
        return std::array::from_fn(|r| {
            let start = (y - 1 + r) * w + x - 1;
            [
                plane[start],
                plane[start + 1],
                plane[start + 2],
                plane[start + 3],
            ]
        });
    }
    std::array::from_fn(|r| {
        std::array::from_fn(|c| {
            let (iy, ix) = ((y + r).wrapping_sub(1), (x + c).wrapping_sub(1));
            if iy < h && ix < w {
                plane[iy * w + ix]
            } else {
                0.0
            }
        })
    })
}

/// A raw pointer the position tasks share; each writes its own rows.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the tasks using it touch disjoint rows (see `winograd`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Spare scratch buffers each thread keeps for its next convolutions.
const SPARES_KEPT: usize = 4;

thread_local! {
    static SPARES: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Scratch floats from the thread's spares, given back when dropped: a
/// ResNet-18 forward pass takes about 50 MB of scratch a photo, layer
/// after layer, and the allocator need not find it afresh each time.
/// Old values stay in a reused buffer, so every user writes each float
/// before reading it (the test `reused_scratch_leaves_no_trace`).
struct Scratch {
    buffer: Vec<f32>,
    len: usize,
}

impl Scratch {
    fn take(len: usize) -> Self {
        let mut buffer = SPARES
            .with_borrow_mut(|spares| {
                let fitting = (0..spares.len())
                    .filter(|&i| spares[i].len() >= len)
                    .min_by_key(|&i| spares[i].len());
                let largest = (0..spares.len()).max_by_key(|&i| spares[i].len());
                fitting.or(largest).map(|i| spares.swap_remove(i))
            })
            .unwrap_or_default();
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
        Scratch { buffer, len }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        // A thread that is ending has no spares to keep.
        let _ = SPARES.try_with(|spares| {
            let mut spares = spares.borrow_mut();
            spares.push(buffer);
            if spares.len() > SPARES_KEPT {
                let smallest = (0..spares.len()).min_by_key(|&i| spares[i].len());
                smallest.map(|i| spares.swap_remove(i));
            }
        });
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buffer[..self.len]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buffer[..self.len]
    }
}

impl Activation {
    #[inline(always)]
    fn scalar(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("the convolution's {what} must be f32")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("the convolution's {what} must be contiguous"),
    }
}

/// The sizes of one convolution.
#[derive(Clone, Copy)]
struct Geometry {
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    /// Winograd's 2x2 output tiles per image.
    fn tiles(&self) -> usize {
        self.h.div_ceil(2) * self.w.div_ceil(2)
    }
}

/// Columns past which a GEMM gains nothing from more images side by side:
/// the late, small layers share one; the early, large ones run an image
/// at a time and keep their scratch buffers one image's size.
const WIDE_ENOUGH: usize = 512;

/// Whether gemm sums every output of an `m x n x depth` product in the
/// same order when `n` grows (more images side by side): gemm 0.19 splits
/// the depth into blocks by the depth and its register tile alone once
/// the product is past its small-size paths (vector products for one row
/// or column, a direct kernel up to 256 outputs, and blocks of 512 up to
/// 64 x 64), and a wider product is past them too. The test
/// `a_batch_answers_as_its_images_alone` holds it to that.
fn batch_keeps_sums(m: usize, n: usize, depth: usize) -> bool {
    depth > 2 && m > 1 && n > 1 && m * n > 256 && (m > 64 || n > 64)
}

/// The 1x1 inputs of `images` images as one matrix, `[channel][image][n]`.
fn side_by_side(x: &[f32], channels: usize, images: usize) -> Scratch {
    let n = x.len() / (channels * images);
    let mut columns = Scratch::take(x.len());
    columns
        .par_chunks_mut(images * n)
        .enumerate()
        .for_each(|(channel, row)| {
            for (image, part) in row.chunks_exact_mut(n).enumerate() {
                part.copy_from_slice(&x[(image * channels + channel) * n..][..n]);
            }
        });
    columns
}

impl CustomOp3 for Conv2d {
    fn name(&self) -> &'static str {
        "starcast-conv2d"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(input, input_layout, "input")?;
        let weights = contiguous(weight, weight_layout, "weight")?;
        let bias = contiguous(bias, bias_layout, "bias")?;
        let (batch, cin, h, w) = input_layout.shape().dims4()?;
        if self.winograd {
            let (sixteen, cout, wcin) = weight_layout.shape().dims3()?;
            if sixteen != 16 || wcin != cin || bias.len() != cout {
                bail!(
                    "Winograd weights {:?} don't fit the input {:?}",
                    weight_layout.dims(),
                    input_layout.dims()
                );
            }
            let g = Geometry {
                cin,
                cout,
                h,
                w,
                k: 3,
                oh: h,
                ow: w,
            };
            let out = self.compute(kernels::active(), x, weights, bias, g);
            return Ok((CpuStorage::F32(out), Shape::from((batch, cout, h, w))));
        }
        let (cout, cin_per_group, k, k2) = weight_layout.shape().dims4()?;
        if k != k2 || cin_per_group * self.groups != cin || bias.len() != cout {
            bail!(
                "convolution shapes don't fit: input {:?}, weight {:?}, bias {}, groups {}",
                input_layout.dims(),
                weight_layout.dims(),
                bias.len(),
                self.groups
            );
        }
        if h + 2 * self.padding < k || w + 2 * self.padding < k {
            bail!("the input ({h}x{w}) is smaller than the {k}x{k} kernel");
        }
        let g = Geometry {
            cin,
            cout,
            h,
            w,
            k,
            oh: (h + 2 * self.padding - k) / self.stride + 1,
            ow: (w + 2 * self.padding - k) / self.stride + 1,
        };
        if self.groups != 1 && !(self.groups == cin && cin == cout) {
            bail!("grouped convolutions other than depthwise are not supported");
        }
        let out = self.compute(kernels::active(), x, weights, bias, g);
        Ok((CpuStorage::F32(out), Shape::from((batch, cout, g.oh, g.ow))))
    }
}

impl Conv2d {
    /// The output of every image in `x` (checked against `g` by the
    /// caller), on `path`. Images of small layers go through one GEMM
    /// together (up to [`WIDE_ENOUGH`] columns) when that leaves each one's
    /// sums as they are alone (see [`batch_keeps_sums`]): a batch's answers
    /// are then the single answers, to the bit.
    fn compute(
        &self,
        path: KernelPath,
        x: &[f32],
        weights: &[f32],
        bias: &[f32],
        g: Geometry,
    ) -> Vec<f32> {
        let (image_in, image_out) = (g.cin * g.h * g.w, g.cout * g.oh * g.ow);
        let images = x.len() / image_in;
        let mut out = vec![0f32; images * image_out];
        let columns = if self.winograd {
            g.tiles()
        } else {
            g.oh * g.ow
        };
        let depth = if self.winograd {
            g.cin
        } else {
            g.cin * g.k * g.k
        };
        let together = if self.groups == 1 && batch_keeps_sums(g.cout, columns, depth) {
            (WIDE_ENOUGH / columns).clamp(1, images.max(1))
        } else {
            1
        };
        let inputs = x.chunks(image_in * together);
        for (x, out) in inputs.zip(out.chunks_mut(image_out * together)) {
            if self.winograd {
                self.winograd(path, x, weights, bias, out, g);
            } else if self.groups > 1 {
                self.depthwise(path, x, weights, bias, out, g);
            } else {
                self.dense(path, x, weights, bias, out, g);
            }
        }
        out
    }

    /// One GEMM for the images in `x`: `[cout, images * oh*ow] =
    /// weight[cout, cin*k*k] x columns[cin*k*k, images * oh*ow]`, where the
    /// columns of one image are its input itself for a plain 1x1
    /// convolution.
    fn dense(
        &self,
        path: KernelPath,
        x: &[f32],
        weights: &[f32],
        bias: &[f32],
        out: &mut [f32],
        g: Geometry,
    ) {
        let n = g.oh * g.ow;
        let images = x.len() / (g.cin * g.h * g.w);
        let plain = g.k == 1 && self.stride == 1 && self.padding == 0;
        let columns;
        let rhs: &[f32] = if plain && images == 1 {
            x
        } else if plain {
            columns = side_by_side(x, g.cin, images);
            &columns
        } else {
            columns = self.im2col(path, x, g, images);
            &columns
        };
        let (m, depth, width) = (g.cout, g.cin * g.k * g.k, images * n);
        debug_assert!(
            weights.len() == m * depth && rhs.len() == depth * width && out.len() == m * width
        );
        // One image's product is its output; a batch's is `[cout][image][n]`
        // and is spread into `[image][cout][n]` after.
        let mut product = None;
        let target: &mut [f32] = if images == 1 {
            &mut *out
        } else {
            product.insert(Scratch::take(m * width))
        };
        let threads = rayon::current_num_threads();
        let parallelism = if threads > 1 && m * width * depth > 1 << 16 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: the three buffers hold m*depth, depth*width and m*width
        // floats (checked by the caller's shape checks and asserted
        // above), all row-major with the strides given, and `target` is
        // not aliased.
        unsafe {
            gemm::gemm(
                m,
                width,
                depth,
                target.as_mut_ptr(),
                1,
                width as isize,
                false,
                weights.as_ptr(),
                1,
                depth as isize,
                rhs.as_ptr(),
                1,
                width as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
        let activation = self.activation;
        let product = product.as_deref();
        out.par_chunks_mut(n).enumerate().for_each(|(at, row)| {
            let (image, channel) = (at / m, at % m);
            if let Some(product) = product {
                row.copy_from_slice(&product[channel * width + image * n..][..n]);
            }
            bias_activation(path, row, bias[channel], activation);
        });
    }

    /// Winograd F(2x2, 3x3): each 4x4 input tile becomes `Bᵀ d B`, the 16
    /// positions multiply as 16 GEMMs over (channels x tiles of all the
    /// images), and each 4x4 product becomes a 2x2 output tile as `Aᵀ m A`.
    /// Both scratch buffers are channel-major (`[channel][position][image]
    /// [tile]`), so every channel's task writes or reads one contiguous
    /// block and the GEMMs read them with a row stride.
    fn winograd(
        &self,
        path: KernelPath,
        x: &[f32],
        u: &[f32],
        bias: &[f32],
        out: &mut [f32],
        g: Geometry,
    ) {
        let (cin, cout, plane) = (g.cin, g.cout, g.h * g.w);
        let images = x.len() / (cin * plane);
        let tiles = g.tiles();
        let stride = images * tiles;
        let block = 16 * stride;
        let mut v = Scratch::take(cin * block);
        v.par_chunks_mut(block).enumerate().for_each(|(ci, v)| {
            for image in 0..images {
                let at = (image * cin + ci) * plane;
                winograd_input(path, &x[at..at + plane], &mut v[image * tiles..], stride, g);
            }
        });
        // m[co][xi] = u[xi] (cout x cin) x v[.][xi] (cin x images*tiles),
        // the 16 positions in parallel.
        let mut m = Scratch::take(cout * block);
        let (m_ptr, v_ptr) = (SendPtr(m.as_mut_ptr()), SendPtr(v.as_ptr().cast_mut()));
        (0..16usize).into_par_iter().for_each(|xi| {
            let lhs = &u[xi * cout * cin..(xi + 1) * cout * cin];
            // SAFETY: position xi's rows start at xi * stride in blocks of
            // `block` floats: m has cout blocks and v cin blocks, so every
            // row of `stride` floats read or written lies inside them; the
            // 16 tasks write disjoint rows of m and only read v.
            unsafe {
                gemm::gemm(
                    cout,
                    stride,
                    cin,
                    m_ptr.get().add(xi * stride),
                    1,
                    block as isize,
                    false,
                    lhs.as_ptr(),
                    1,
                    cin as isize,
                    v_ptr.get().add(xi * stride),
                    1,
                    block as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
        let activation = self.activation;
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(at, plane)| {
                let (image, co) = (at / cout, at % cout);
                let products = &m[co * block + image * tiles..];
                winograd_output(path, products, stride, bias[co], plane, g, activation);
            });
    }

    /// Rows `(ci, ky, kx)`, columns the output positions of each image in
    /// turn; zeros for padding.
    fn im2col(&self, path: KernelPath, x: &[f32], g: Geometry, images: usize) -> Scratch {
        let (n, plane) = (g.oh * g.ow, g.h * g.w);
        let width = images * n;
        let mut columns = Scratch::take(g.cin * g.k * g.k * width);
        columns
            .par_chunks_mut(g.k * g.k * width)
            .enumerate()
            .for_each(|(ci, block)| {
                for image in 0..images {
                    let at = (image * g.cin + ci) * plane;
                    let rows = &mut block[image * n..];
                    im2col_channel(path, &x[at..at + plane], rows, width, g, *self);
                }
            });
        columns
    }

    /// One filter per channel, channels in parallel.
    fn depthwise(
        &self,
        path: KernelPath,
        x: &[f32],
        weights: &[f32],
        bias: &[f32],
        out: &mut [f32],
        g: Geometry,
    ) {
        let k = g.k;
        out.par_chunks_mut(g.oh * g.ow)
            .enumerate()
            .for_each(|(c, target)| {
                let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
                let filter = &weights[c * k * k..(c + 1) * k * k];
                depthwise_plane(path, plane, filter, bias[c], target, g, *self);
            });
    }
}

multiversion! {
    /// `row[i] = activation(row[i] + b)`.
    fn bias_activation(row: &mut [f32], b: f32, activation: Activation) => bias_activation_body
}

#[inline(always)]
fn bias_activation_body(row: &mut [f32], b: f32, activation: Activation) {
    row.iter_mut().for_each(|v| *v = activation.scalar(*v + b));
}

multiversion! {
    /// One input channel's tiles as `Bᵀ d B`, into `[position][tile]`
    /// rows `stride` floats apart.
    fn winograd_input(plane: &[f32], v: &mut [f32], stride: usize, g: Geometry) => winograd_input_body
}

#[inline(always)]
fn winograd_input_body(plane: &[f32], v: &mut [f32], stride: usize, g: Geometry) {
    let (tiles_y, tiles_x) = (g.h.div_ceil(2), g.w.div_ceil(2));
    for ty in 0..tiles_y {
        for tx in 0..tiles_x {
            let d = tile(plane, g.h, g.w, 2 * ty, 2 * tx);
            // Bᵀ d: rows d0-d2, d1+d2, d2-d1, d1-d3; then the same on columns.
            let bd: [[f32; 4]; 4] = [
                std::array::from_fn(|c| d[0][c] - d[2][c]),
                std::array::from_fn(|c| d[1][c] + d[2][c]),
                std::array::from_fn(|c| d[2][c] - d[1][c]),
                std::array::from_fn(|c| d[1][c] - d[3][c]),
            ];
            let t = ty * tiles_x + tx;
            for (r, row) in bd.iter().enumerate() {
                let values = [
                    row[0] - row[2],
                    row[1] + row[2],
                    row[2] - row[1],
                    row[1] - row[3],
                ];
                for (c, value) in values.into_iter().enumerate() {
                    v[(r * 4 + c) * stride + t] = value;
                }
            }
        }
    }
}

multiversion! {
    /// One output channel's plane from its `[position][tile]` products,
    /// rows `stride` floats apart, as `Aᵀ m A`, plus bias, through the
    /// activation.
    fn winograd_output(m: &[f32], stride: usize, b: f32, plane: &mut [f32], g: Geometry, activation: Activation) => winograd_output_body
}

#[inline(always)]
fn winograd_output_body(
    m: &[f32],
    stride: usize,
    b: f32,
    plane: &mut [f32],
    g: Geometry,
    activation: Activation,
) {
    let (tiles_y, tiles_x) = (g.h.div_ceil(2), g.w.div_ceil(2));
    for ty in 0..tiles_y {
        for tx in 0..tiles_x {
            let t = ty * tiles_x + tx;
            let at = |xi: usize| m[xi * stride + t];
            // Aᵀ m: rows m0+m1+m2 and m1-m2-m3; then the same on columns.
            let am: [[f32; 4]; 2] = [
                std::array::from_fn(|c| at(c) + at(4 + c) + at(8 + c)),
                std::array::from_fn(|c| at(4 + c) - at(8 + c) - at(12 + c)),
            ];
            for (r, row) in am.iter().enumerate() {
                let y = 2 * ty + r;
                if y >= g.h {
                    continue;
                }
                let values = [row[0] + row[1] + row[2], row[1] - row[2] - row[3]];
                for (c, value) in values.into_iter().enumerate() {
                    let x = 2 * tx + c;
                    if x < g.w {
                        plane[y * g.w + x] = activation.scalar(value + b);
                    }
                }
            }
        }
    }
}

multiversion! {
    /// One input channel's `k x k` rows of columns, `stride` floats apart,
    /// zeros for padding.
    fn im2col_channel(plane: &[f32], block: &mut [f32], stride: usize, g: Geometry, conv: Conv2d) => im2col_channel_body
}

#[inline(always)]
fn im2col_channel_body(plane: &[f32], block: &mut [f32], stride: usize, g: Geometry, conv: Conv2d) {
    let (k, s, p) = (g.k, conv.stride, conv.padding);
    let n = g.oh * g.ow;
    for ky in 0..k {
        for kx in 0..k {
            let row = &mut block[(ky * k + kx) * stride..][..n];
            for oy in 0..g.oh {
                let iy = (oy * s + ky) as isize - p as isize;
                let target = &mut row[oy * g.ow..(oy + 1) * g.ow];
                if iy < 0 || iy >= g.h as isize {
                    target.fill(0.0);
                    continue;
                }
                let source = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                for (ox, t) in target.iter_mut().enumerate() {
                    let ix = (ox * s + kx) as isize - p as isize;
                    *t = if ix >= 0 && ix < g.w as isize {
                        source[ix as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

multiversion! {
    /// One channel's plane through its own `k x k` filter, plus bias,
    /// through the activation.
    fn depthwise_plane(plane: &[f32], filter: &[f32], bias: f32, target: &mut [f32], g: Geometry, conv: Conv2d) => depthwise_plane_body
}

#[inline(always)]
fn depthwise_plane_body(
    plane: &[f32],
    filter: &[f32],
    bias: f32,
    target: &mut [f32],
    g: Geometry,
    conv: Conv2d,
) {
    let (k, s, p) = (g.k, conv.stride, conv.padding);
    // The plane inside its zero padding, its columns split by phase
    // (column mod stride): every tap then reads a contiguous run, with no
    // bounds to check, and each output row stays in registers for all taps.
    let (padded_h, padded_w) = (g.h + 2 * p, g.w + 2 * p);
    let phase_w = padded_w.div_ceil(s);
    let mut padded = vec![0f32; s * padded_h * phase_w];
    for (y, row) in plane.chunks_exact(g.w).enumerate() {
        if s == 1 {
            padded[(y + p) * phase_w + p..][..g.w].copy_from_slice(row);
            continue;
        }
        // Column x + p's phase and place in it, counted rather than divided.
        let (mut phase, mut at) = (p % s, p / s);
        for &value in row {
            padded[(phase * padded_h + y + p) * phase_w + at] = value;
            phase += 1;
            if phase == s {
                phase = 0;
                at += 1;
            }
        }
    }
    for (oy, out) in target.chunks_exact_mut(g.ow).enumerate() {
        out.fill(bias);
        for ky in 0..k {
            for kx in 0..k {
                let wv = filter[ky * k + kx];
                let start = ((kx % s) * padded_h + oy * s + ky) * phase_w + kx / s;
                for (o, i) in out.iter_mut().zip(&padded[start..start + g.ow]) {
                    *o += wv * i;
                }
            }
        }
        out.iter_mut().for_each(|v| *v = conv.activation.scalar(*v));
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// The weights as `conv` reads them: Winograd's transform of the
    /// `(cout, cin, 3, 3)` filters, or the filters themselves.
    fn op_weights(filters: &Tensor, winograd: bool) -> Vec<f32> {
        let weights = if winograd {
            winograd_weights(filters).unwrap()
        } else {
            filters.clone()
        };
        weights.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// The sizes of `conv` with a `k x k` kernel on `cin x h x w` images.
    fn geometry(
        conv: &Conv2d,
        cin: usize,
        cout: usize,
        (h, w): (usize, usize),
        k: usize,
    ) -> Geometry {
        Geometry {
            cin,
            cout,
            h,
            w,
            k,
            oh: (h + 2 * conv.padding - k) / conv.stride + 1,
            ow: (w + 2 * conv.padding - k) / conv.stride + 1,
        }
    }

    /// An ungrouped convolution of `cout` `k x k` filters over `cin x h x
    /// w` images, without activation, its weights (as the op reads them)
    /// and bias made up from `seed`: the op, weights, bias and sizes.
    fn ungrouped(
        cin: usize,
        (h, w): (usize, usize),
        (cout, k, stride, padding, winograd): (usize, usize, usize, usize, bool),
        seed: usize,
    ) -> (Conv2d, Vec<f32>, Vec<f32>, Geometry) {
        let filters = values(cout * cin * k * k, seed);
        let filters = Tensor::from_vec(filters, (cout, cin, k, k), &Device::Cpu).unwrap();
        let conv = Conv2d {
            stride,
            padding,
            groups: 1,
            activation: Activation::None,
            winograd,
        };
        let g = geometry(&conv, cin, cout, (h, w), k);
        (
            conv,
            op_weights(&filters, winograd),
            values(cout, seed + 1),
            g,
        )
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104729) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Each kind of convolution (dense 1x1, strided im2col, depthwise at
    /// strides 1 and 2, Winograd): the portable loops against candle's
    /// convolution, and every kernel path this CPU has against them.
    #[test]
    fn every_kernel_path_agrees_with_the_portable_one() {
        let (cin, h, w) = (8, 9, 7);
        let x = values(2 * cin * h * w, 1);
        let cases = [
            (16, 1, 1, 0, 1, false),
            (16, 3, 2, 1, 1, false),
            (cin, 3, 1, 1, cin, false),
            (cin, 3, 2, 1, cin, false),
            (16, 3, 1, 1, 1, true),
            // Wide enough for the images to share one GEMM.
            (80, 1, 1, 0, 1, false),
            (80, 3, 2, 1, 1, false),
            (80, 3, 1, 1, 1, true),
        ];
        for (cout, k, stride, padding, groups, winograd) in cases {
            let weight = values(cout * cin / groups * k * k, 2);
            let bias = values(cout, 3);
            let weight_tensor =
                Tensor::from_vec(weight, (cout, cin / groups, k, k), &Device::Cpu).unwrap();
            let weights = op_weights(&weight_tensor, winograd);
            let conv = Conv2d {
                stride,
                padding,
                groups,
                activation: Activation::Relu6,
                winograd,
            };
            let g = geometry(&conv, cin, cout, (h, w), k);
            let portable = conv.compute(KernelPath::Portable, &x, &weights, &bias, g);
            // candle's own convolution, bias and clamp: the reference.
            let input = Tensor::from_vec(x.clone(), (2, cin, h, w), &Device::Cpu).unwrap();
            let bias_tensor =
                Tensor::from_vec(bias.clone(), (1, cout, 1, 1), &Device::Cpu).unwrap();
            let reference = input
                .conv2d(&weight_tensor, padding, stride, 1, groups)
                .unwrap()
                .broadcast_add(&bias_tensor)
                .unwrap()
                .clamp(0f32, 6f32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(portable.len(), reference.len());
            for (a, b) in portable.iter().zip(&reference) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{conv:?}: {a} vs candle's {b}"
                );
            }
            assert!(
                portable.iter().any(|&v| v > 0.0 && v < 6.0),
                "{conv:?}: all clipped"
            );
            for path in KernelPath::available() {
                let got = conv.compute(path, &x, &weights, &bias, g);
                for (a, b) in got.iter().zip(&portable) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{conv:?} on {path}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// Scratch buffers come back holding another layer's floats; none of
    /// them may reach an output (padding included).
    #[test]
    fn reused_scratch_leaves_no_trace() {
        let (images, cin, h, w) = (2, 8, 9, 7);
        let x = values(images * cin * h * w, 7);
        for case in [
            (80, 1, 1, 0, false),
            (16, 3, 2, 1, false),
            (80, 3, 2, 1, false),
            (16, 3, 1, 1, true),
        ] {
            let (conv, weights, bias, g) = ungrouped(cin, (h, w), case, 8);
            // A new thread has no spares yet.
            let fresh = std::thread::scope(|s| {
                s.spawn(|| conv.compute(KernelPath::Portable, &x, &weights, &bias, g))
                    .join()
                    .unwrap()
            });
            let poisoned: Vec<_> = (0..SPARES_KEPT)
                .map(|_| {
                    let mut scratch = Scratch::take(1 << 16);
                    scratch.fill(f32::NAN);
                    scratch
                })
                .collect();
            drop(poisoned);
            let reused = conv.compute(KernelPath::Portable, &x, &weights, &bias, g);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&reused), bits(&fresh), "{conv:?}");
        }
    }

    /// Images that share a GEMM get the bits each gets alone, for every
    /// kind of convolution that shares one, with a depth past one block of
    /// the GEMM's.
    #[test]
    fn a_batch_answers_as_its_images_alone() {
        let (images, cin, h, w) = (3, 64, 9, 10);
        let x = values(images * cin * h * w, 4);
        for (cout, k, stride, padding, winograd) in [
            (96, 1, 1, 0, false),
            (96, 3, 2, 1, false),
            (96, 3, 1, 1, false),
            (72, 3, 1, 1, true),
        ] {
            let (conv, weights, bias, g) =
                ungrouped(cin, (h, w), (cout, k, stride, padding, winograd), 5);
            let columns = if winograd { g.tiles() } else { g.oh * g.ow };
            assert!(batch_keeps_sums(cout, columns, cin * k * k), "{conv:?}");
            for path in KernelPath::available() {
                let together = conv.compute(path, &x, &weights, &bias, g);
                let alone: Vec<f32> = x
                    .chunks(cin * h * w)
                    .flat_map(|image| conv.compute(path, image, &weights, &bias, g))
                    .collect();
                assert!(
                    together
                        .iter()
                        .zip(&alone)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{conv:?} on {path}: a batch differs from its images alone"
                );
            }
        }
    }
}
