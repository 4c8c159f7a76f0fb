//! Matrix products on GGUF's Q4_1, Q5_0 and Q8_0 weights as stored. The
//! activations are quantized to 8 bits per block of 32 values, and each
//! pair of blocks meets in an integer dot product (AVX2, or AVX-512 VNNI's
//! `vpdpbusd`, on the path [`crate::kernels`] chose), as llama.cpp does. candle 0.11 has no SIMD kernel for Q4_1, the
//! packaged SmolLM2's format: its scalar one ran generation 7x slower than
//! llama.cpp, and requantizing to Q8_0 instead cost 1.7x the memory.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};
use half::f16;
use rayon::prelude::*;

use super::kquants::{self, KFormat, Q8K, SUPER_BLOCK};
use crate::kernels::{self, KernelPath};

/// Values per block, in every format here.
const BLOCK: usize = 32;
/// Weight rows per parallel task: enough work to outweigh the hand-off.
const ROWS_PER_TASK: usize = 16;
/// A tile of a product with several inputs: weight rows times inputs, each
/// weight block unpacked once for the tile's inputs, each activation block
/// loaded once for its rows.
const TILE_ROWS: usize = 4;
const TILE_INPUTS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Per block: scale `d` and minimum `m` (f16), 32 4-bit values; `x = q d + m`.
    Q4_1,
    /// Per block: scale `d` (f16), the 32 values' fifth bits, then their
    /// low 4 bits; `x = (q - 16) d`. Gemma 3's projections are stored so.
    Q5_0,
    /// Per block: scale `d` (f16), 32 signed 8-bit values; `x = q d`.
    Q8_0,
}

impl Format {
    fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q4_1 => Some(Format::Q4_1),
            GgmlDType::Q5_0 => Some(Format::Q5_0),
            GgmlDType::Q8_0 => Some(Format::Q8_0),
            _ => None,
        }
    }

    fn block_bytes(self) -> usize {
        match self {
            Format::Q4_1 => 20,
            Format::Q5_0 => 22,
            Format::Q8_0 => 34,
        }
    }
}

/// How a matrix's rows are encoded: blocks of 32 values, multiplied with
/// [`Q8Block`] activations, or K-quant super-blocks of 256, with [`Q8K`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Blocks(Format),
    SuperBlocks(KFormat),
}

impl Encoding {
    fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q4K => Some(Encoding::SuperBlocks(KFormat::Q4K)),
            GgmlDType::Q6K => Some(Encoding::SuperBlocks(KFormat::Q6K)),
            other => Format::of(other).map(Encoding::Blocks),
        }
    }

    /// The encoding of `dtype` when rows of `columns` values are whole blocks of it.
    fn fitting(dtype: GgmlDType, columns: usize) -> Option<Self> {
        Self::of(dtype).filter(|encoding| columns.is_multiple_of(encoding.values()))
    }

    fn values(self) -> usize {
        match self {
            Encoding::Blocks(_) => BLOCK,
            Encoding::SuperBlocks(_) => SUPER_BLOCK,
        }
    }

    fn block_bytes(self) -> usize {
        match self {
            Encoding::Blocks(format) => format.block_bytes(),
            Encoding::SuperBlocks(format) => format.block_bytes(),
        }
    }
}

/// A `[rows, columns]` weight in a block format, each row's blocks
/// contiguous, as GGUF stores it.
#[derive(Clone, Debug)]
pub struct BlockMatrix {
    encoding: Encoding,
    rows: usize,
    columns: usize,
    /// A `Vec` behind the `Arc`: an `Arc<[u8]>` made from one is a copy,
    /// which for a 178 MB embedding cost as much memory again at load.
    data: Arc<Vec<u8>>,
}

impl BlockMatrix {
    /// The matrix in `tensor`, or `None` when its format isn't one of these.
    pub fn from_qtensor(tensor: &QTensor) -> Result<Option<Self>> {
        let (rows, columns) = tensor.shape().dims2()?;
        let Some(encoding) = Encoding::fitting(tensor.dtype(), columns) else {
            return Ok(None);
        };
        Self::from_bytes(encoding, rows, columns, tensor.data()?.into_owned()).map(Some)
    }

    /// The GGUF tensor `name` read straight from the file into its blocks
    /// (no intermediate tensor), or `None` when it is in no format of
    /// these or not a matrix.
    pub fn from_gguf<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        name: &str,
    ) -> Result<Option<Self>> {
        let Some(info) = content.tensor_infos.get(name) else {
            bail!("the GGUF has no tensor {name}");
        };
        let Ok((rows, columns)) = info.shape.dims2() else {
            return Ok(None);
        };
        let Some(encoding) = Encoding::fitting(info.ggml_dtype, columns) else {
            return Ok(None);
        };
        let bytes = (rows * columns)
            .checked_div(encoding.values())
            .and_then(|blocks| blocks.checked_mul(encoding.block_bytes()))
            .ok_or_else(|| candle_core::Error::Msg(format!("{name} is too large")))?;
        reader.seek(std::io::SeekFrom::Start(
            content.tensor_data_offset + info.offset,
        ))?;
        let mut data = vec![0u8; bytes];
        reader.read_exact(&mut data)?;
        Self::from_bytes(encoding, rows, columns, data).map(Some)
    }

    fn from_bytes(encoding: Encoding, rows: usize, columns: usize, data: Vec<u8>) -> Result<Self> {
        if data.len() != rows * columns / encoding.values() * encoding.block_bytes() {
            bail!(
                "a {rows}x{columns} {encoding:?} matrix holds {} bytes",
                data.len()
            );
        }
        Ok(BlockMatrix {
            encoding,
            rows,
            columns,
            data: Arc::new(data),
        })
    }

    /// The matrices one above the other, as one; `None` unless they share
    /// a format and a width.
    pub fn stack(parts: &[&BlockMatrix]) -> Option<Self> {
        let first = parts.first()?;
        if parts
            .iter()
            .any(|part| part.encoding != first.encoding || part.columns != first.columns)
        {
            return None;
        }
        let data: Vec<u8> = parts
            .iter()
            .flat_map(|part| part.data.iter().copied())
            .collect();
        Some(BlockMatrix {
            encoding: first.encoding,
            rows: parts.iter().map(|part| part.rows).sum(),
            columns: first.columns,
            data: Arc::new(data),
        })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.columns)
    }

    fn row_bytes(&self) -> usize {
        self.columns / self.encoding.values() * self.encoding.block_bytes()
    }

    fn row(&self, row: usize) -> &[u8] {
        let bytes = self.row_bytes();
        &self.data[row * bytes..][..bytes]
    }

    /// The rows `ids`, dequantized, one after another: an embedding lookup
    /// that leaves the rest of the table quantized.
    pub fn dequantize_rows(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ids.len() * self.columns);
        for &id in ids {
            if id as usize >= self.rows {
                bail!("token {id} is outside the vocabulary of {}", self.rows);
            }
            for block in self
                .row(id as usize)
                .chunks_exact(self.encoding.block_bytes())
            {
                let format = match self.encoding {
                    Encoding::Blocks(format) => format,
                    Encoding::SuperBlocks(format) => {
                        kquants::dequantize(format, block, &mut out);
                        continue;
                    }
                };
                match format {
                    Format::Q4_1 => {
                        let (d, m) = (half_at(block, 0), half_at(block, 2));
                        let qs = &block[4..20];
                        out.extend(qs.iter().map(|q| f32::from(q & 0x0F) * d + m));
                        out.extend(qs.iter().map(|q| f32::from(q >> 4) * d + m));
                    }
                    Format::Q5_0 => {
                        let d = half_at(block, 0);
                        out.extend((0..BLOCK).map(|j| f32::from(q5_value(block, j)) * d));
                    }
                    Format::Q8_0 => {
                        let d = half_at(block, 0);
                        out.extend(block[2..34].iter().map(|&q| f32::from(q as i8) * d));
                    }
                }
            }
        }
        Ok(out)
    }

    /// `xs` (`[n, columns]`, F32) times the transposed matrix: `[n, rows]`.
    pub fn matmul(&self, xs: &Tensor) -> Result<Tensor> {
        xs.contiguous()?.apply_op1_no_bwd(self)
    }

    /// Row `row` of a matrix in `format` times one input's activation
    /// blocks, on `path`.
    fn dot(&self, format: Format, path: KernelPath, row: usize, xs: &[Q8Block]) -> f32 {
        let weights = self.row(row);
        // SAFETY (both arms): `path` is one this CPU supports (checked by
        // `kernels`, or by the tests that pick it), and `weights` holds as
        // many blocks as `xs` (one row of `columns`).
        #[cfg(target_arch = "x86_64")]
        match path {
            KernelPath::Avx512 => return unsafe { avx512::dot(format, weights, xs) },
            KernelPath::Avx2 => return unsafe { avx2::dot(format, weights, xs) },
            KernelPath::Portable | KernelPath::Simd128 => {}
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if path == KernelPath::Simd128 {
            return simd128::dot(format, weights, xs);
        }
        match format {
            Format::Q4_1 => dot_q4_1(weights, xs),
            Format::Q5_0 => dot_q5_0(weights, xs),
            Format::Q8_0 => dot_q8_0(weights, xs),
        }
    }

    /// Rows `first..first + R` times `C` inputs' activation blocks, on `path`.
    fn tile<const R: usize, const C: usize>(
        &self,
        format: Format,
        path: KernelPath,
        first: usize,
        xs: [&[Q8Block]; C],
    ) -> [[f32; C]; R] {
        #[cfg(target_arch = "x86_64")]
        {
            let row_bytes = self.row_bytes();
            let weights = &self.data[first * row_bytes..][..R * row_bytes];
            let blocks = self.columns / BLOCK;
            // SAFETY (both arms): `path` is supported (see `dot`), `weights`
            // holds R rows of `blocks` blocks, and each input as many.
            match path {
                KernelPath::Avx512 => return unsafe { avx512::tile(format, weights, xs, blocks) },
                KernelPath::Avx2 => return unsafe { avx2::tile(format, weights, xs, blocks) },
                KernelPath::Portable | KernelPath::Simd128 => {}
            }
        }
        std::array::from_fn(|r| std::array::from_fn(|c| self.dot(format, path, first + r, xs[c])))
    }

    /// `xs` (`[n, columns]` values, row after row) times the transposed
    /// matrix, on `path`: `[n, rows]`.
    fn product(&self, path: KernelPath, xs: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n * self.rows];
        let output = Output {
            values: out.as_mut_ptr(),
            rows: self.rows,
        };
        let tasks = self.rows.div_ceil(ROWS_PER_TASK);
        match self.encoding {
            Encoding::Blocks(format) => self.block_product(format, path, xs, n, tasks, &output),
            Encoding::SuperBlocks(format) => {
                self.super_block_product(format, path, xs, tasks, &output)
            }
        }
        out
    }

    /// The product of a K-quant matrix, `tasks` stretches of rows in parallel.
    fn super_block_product(
        &self,
        format: KFormat,
        path: KernelPath,
        xs: &[f32],
        tasks: usize,
        output: &Output,
    ) {
        let blocks: Vec<Q8K> = xs.chunks_exact(SUPER_BLOCK).map(Q8K::quantize).collect();
        let inputs: Vec<&[Q8K]> = blocks.chunks_exact(self.columns / SUPER_BLOCK).collect();
        (0..tasks).into_par_iter().for_each(|task| {
            for row in self.task_rows(task) {
                let weights = self.row(row);
                for (input, xs) in inputs.iter().enumerate() {
                    // SAFETY: each task writes its own rows only.
                    unsafe { output.write(input, row, kquants::dot(path, format, weights, xs)) };
                }
            }
        });
    }

    /// The rows task `task` multiplies.
    fn task_rows(&self, task: usize) -> std::ops::Range<usize> {
        let first = task * ROWS_PER_TASK;
        first..(first + ROWS_PER_TASK).min(self.rows)
    }

    /// The product of a matrix of 32-value blocks, `tasks` stretches of
    /// rows in parallel.
    fn block_product(
        &self,
        format: Format,
        path: KernelPath,
        xs: &[f32],
        n: usize,
        tasks: usize,
        output: &Output,
    ) {
        let blocks: Vec<Q8Block> = xs.chunks_exact(BLOCK).map(Q8Block::quantize).collect();
        let inputs: Vec<&[Q8Block]> = blocks.chunks_exact(self.columns / BLOCK).collect();
        (0..tasks).into_par_iter().for_each(|task| {
            let rows = self.task_rows(task);
            // SAFETY (every write): each task writes its own rows only.
            // One input (a generated token) streams every weight from
            // memory once; several share each weight block in tiles.
            if n == 1 {
                for row in rows {
                    unsafe { output.write(0, row, self.dot(format, path, row, inputs[0])) };
                }
                return;
            }
            let mut input = 0;
            while input < n {
                if input + TILE_INPUTS <= n {
                    let xs: [&[Q8Block]; TILE_INPUTS] = std::array::from_fn(|c| inputs[input + c]);
                    self.tile_rows(format, path, rows.clone(), xs, |row, c, value| unsafe {
                        output.write(input + c, row, value)
                    });
                    input += TILE_INPUTS;
                } else {
                    self.tile_rows(
                        format,
                        path,
                        rows.clone(),
                        [inputs[input]],
                        |row, _, value| unsafe { output.write(input, row, value) },
                    );
                    input += 1;
                }
            }
        });
    }

    /// Rows `rows` times the `C` inputs, in tiles of [`TILE_ROWS`] rows;
    /// `write(row, input, value)` takes each answer.
    fn tile_rows<const C: usize>(
        &self,
        format: Format,
        path: KernelPath,
        rows: std::ops::Range<usize>,
        xs: [&[Q8Block]; C],
        mut write: impl FnMut(usize, usize, f32),
    ) {
        let mut row = rows.start;
        while row < rows.end {
            if row + TILE_ROWS <= rows.end {
                let values = self.tile::<TILE_ROWS, C>(format, path, row, xs);
                for (r, values) in values.iter().enumerate() {
                    for (c, &value) in values.iter().enumerate() {
                        write(row + r, c, value);
                    }
                }
                row += TILE_ROWS;
            } else {
                let [values] = self.tile::<1, C>(format, path, row, xs);
                for (c, &value) in values.iter().enumerate() {
                    write(row, c, value);
                }
                row += 1;
            }
        }
    }
}

/// A product's `[n, rows]` answers, written from the parallel tasks, each
/// of which owns a stretch of rows: no two write the same place.
struct Output {
    values: *mut f32,
    rows: usize,
}

// SAFETY: the tasks sharing an `Output` write disjoint places (see `write`).
unsafe impl Sync for Output {}

impl Output {
    /// # Safety
    /// `input` and `row` are within the product's shape, and no other task
    /// writes `row`.
    unsafe fn write(&self, input: usize, row: usize, value: f32) {
        // SAFETY: the caller's.
        unsafe { *self.values.add(input * self.rows + row) = value };
    }
}

impl CustomOp1 for BlockMatrix {
    fn name(&self) -> &'static str {
        "starcast-block-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, columns) = layout.shape().dims2()?;
        if columns != self.columns {
            bail!(
                "a product of {columns} values with a matrix of {} columns",
                self.columns
            );
        }
        let (CpuStorage::F32(xs), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            bail!("a block matrix product takes contiguous F32 values");
        };
        let out = self.product(kernels::active(), &xs[start..end], n);
        Ok((CpuStorage::F32(out), Shape::from((n, self.rows))))
    }
}

fn half_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// 32 activations as 8-bit integers, `x ≈ d q`, with `sum = d Σq` for the
/// formats that add a minimum.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Q8Block {
    d: f32,
    sum: f32,
    qs: [i8; BLOCK],
}

impl Q8Block {
    fn quantize(values: &[f32]) -> Self {
        let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = largest / 127.0;
        let inverse = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; BLOCK];
        for (q, v) in qs.iter_mut().zip(values) {
            *q = (v * inverse).round() as i8;
        }
        let total: i32 = qs.iter().map(|&q| i32::from(q)).sum();
        Q8Block {
            d,
            sum: d * total as f32,
            qs,
        }
    }
}

fn dot_q4_1(weights: &[u8], xs: &[Q8Block]) -> f32 {
    weights
        .chunks_exact(Format::Q4_1.block_bytes())
        .zip(xs)
        .map(|(block, x)| {
            let (d, m) = (half_at(block, 0), half_at(block, 2));
            let products: i32 = block[4..20]
                .iter()
                .enumerate()
                .map(|(j, q)| {
                    i32::from(q & 0x0F) * i32::from(x.qs[j])
                        + i32::from(q >> 4) * i32::from(x.qs[j + 16])
                })
                .sum();
            d * x.d * products as f32 + m * x.sum
        })
        .sum()
}

/// Value `j` of a Q5_0 block, `-16..16`.
fn q5_value(block: &[u8], j: usize) -> i8 {
    let high_bits = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let nibble = if j < 16 {
        block[6 + j] & 0x0F
    } else {
        block[6 + j - 16] >> 4
    };
    let fifth = ((high_bits >> j) & 1) as u8;
    (nibble | (fifth << 4)) as i8 - 16
}

fn dot_q5_0(weights: &[u8], xs: &[Q8Block]) -> f32 {
    weights
        .chunks_exact(Format::Q5_0.block_bytes())
        .zip(xs)
        .map(|(block, x)| {
            let products: i32 = (0..BLOCK)
                .map(|j| i32::from(q5_value(block, j)) * i32::from(x.qs[j]))
                .sum();
            half_at(block, 0) * x.d * products as f32
        })
        .sum()
}

fn dot_q8_0(weights: &[u8], xs: &[Q8Block]) -> f32 {
    weights
        .chunks_exact(Format::Q8_0.block_bytes())
        .zip(xs)
        .map(|(block, x)| {
            let products: i32 = block[2..34]
                .iter()
                .zip(&x.qs)
                .map(|(&w, &q)| i32::from(w as i8) * i32::from(q))
                .sum();
            half_at(block, 0) * x.d * products as f32
        })
        .sum()
}

/// The x86 kernels for one instruction set: `$features` enabled, and
/// `$products` summing the `u8 x i8` products of 32 lanes in groups of 4.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_kernels {
    ($name:ident, $features:literal, $products:path) => {
        mod $name {
            use std::arch::x86_64::*;

            use super::{Format, Q8Block};

            /// Σ of `u8 x i8` products over 32 lanes, as 8 sums.
            #[inline]
            #[target_feature(enable = $features)]
            fn products(unsigned: __m256i, signed: __m256i) -> __m256 {
                _mm256_cvtepi32_ps($products(unsigned, signed))
            }

            /// The f16 numbers in the first 2 or 4 bytes of `bytes`, converted by
            /// the CPU (a software conversion per block cost more than the block's
            /// dot product).
            #[inline]
            #[target_feature(enable = $features)]
            fn halves(bytes: [u8; 4]) -> __m128 {
                _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes(bytes)))
            }

            /// Lane `i` holds 16 where bit `i` of the 32 bits is set, else 0:
            /// each byte gets the bits' byte, and all bits but its own forced on.
            #[inline]
            #[target_feature(enable = $features)]
            fn fifth_bits(bits: [u8; 4]) -> __m256i {
                let spread = _mm256_shuffle_epi8(
                    _mm256_set1_epi32(i32::from_le_bytes(bits)),
                    _mm256_set_epi64x(
                        0x0303030303030303,
                        0x0202020202020202,
                        0x0101010101010101,
                        0,
                    ),
                );
                let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
                let set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi8(-1));
                _mm256_and_si256(set, _mm256_set1_epi8(16))
            }

            #[inline]
            #[target_feature(enable = $features)]
            fn sum(v: __m256) -> f32 {
                let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
                _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)))
            }

            /// One weight block ready for products: its 32 values as bytes
            /// (unsigned, `0..32` for Q5_0, or Q8_0's signed ones), its scale,
            /// and what each unit of the activations' sum adds (Q4_1's minimum,
            /// Q5_0's `-16 d`, 0 for Q8_0).
            struct Weights {
                values: __m256i,
                scale: f32,
                minimum: f32,
            }

            // The two helpers below are always inlined into the kernels,
            // which carry the module's features: a call per block cost more
            // than the block's products (and `target_feature` functions can't
            // be forced inline).

            /// # Safety
            /// The CPU must have the module's features; `block` is one block of `format`.
            #[inline(always)]
            unsafe fn unpack(format: Format, block: &[u8]) -> Weights {
                // SAFETY: the caller's; each load stays within the block.
                unsafe {
                    match format {
                        Format::Q4_1 => {
                            let scales = halves([block[0], block[1], block[2], block[3]]);
                            let packed = _mm_loadu_si128(block.as_ptr().add(4).cast());
                            let low = _mm_set1_epi8(0x0F);
                            // Values 0-15 are the low nibbles, 16-31 the high ones.
                            Weights {
                                values: _mm256_set_m128i(
                                    _mm_and_si128(_mm_srli_epi16(packed, 4), low),
                                    _mm_and_si128(packed, low),
                                ),
                                scale: _mm_cvtss_f32(scales),
                                minimum: _mm_cvtss_f32(_mm_movehdup_ps(scales)),
                            }
                        }
                        Format::Q5_0 => {
                            let scale = _mm_cvtss_f32(halves([block[0], block[1], 0, 0]));
                            let packed = _mm_loadu_si128(block.as_ptr().add(6).cast());
                            let low = _mm_set1_epi8(0x0F);
                            let nibbles = _mm256_set_m128i(
                                _mm_and_si128(_mm_srli_epi16(packed, 4), low),
                                _mm_and_si128(packed, low),
                            );
                            let fifths = fifth_bits([block[2], block[3], block[4], block[5]]);
                            Weights {
                                values: _mm256_or_si256(nibbles, fifths),
                                scale,
                                minimum: -16.0 * scale,
                            }
                        }
                        Format::Q8_0 => Weights {
                            values: _mm256_loadu_si256(block.as_ptr().add(2).cast()),
                            scale: _mm_cvtss_f32(halves([block[0], block[1], 0, 0])),
                            minimum: 0.0,
                        },
                    }
                }
            }

            /// The 8 partial sums of a weight block's products with 32
            /// activations, as floats.
            ///
            /// # Safety
            /// The CPU must have the module's features.
            #[inline(always)]
            unsafe fn pair(format: Format, weights: &Weights, activations: __m256i) -> __m256 {
                // SAFETY: the caller's.
                unsafe {
                    match format {
                        // maddubs multiplies unsigned by signed: move w's sign onto q.
                        Format::Q8_0 => products(
                            _mm256_sign_epi8(weights.values, weights.values),
                            _mm256_sign_epi8(activations, weights.values),
                        ),
                        Format::Q4_1 | Format::Q5_0 => products(weights.values, activations),
                    }
                }
            }

            /// One weight row times the activations, two blocks in flight with
            /// their own sums: with one, each block waited on the previous one's
            /// multiply-add.
            ///
            /// # Safety
            /// The CPU must have the module's features; `weights` holds `xs.len()`
            /// blocks of `format`.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn dot(format: Format, weights: &[u8], xs: &[Q8Block]) -> f32 {
                let mut sums = [_mm256_setzero_ps(); 2];
                let mut minimums = 0f32;
                let mut blocks = weights.chunks_exact(format.block_bytes()).zip(xs);
                'row: loop {
                    for sum in &mut sums {
                        let Some((block, x)) = blocks.next() else {
                            break 'row;
                        };
                        // SAFETY: the caller's.
                        unsafe {
                            let w = unpack(format, block);
                            let activations = _mm256_loadu_si256(x.qs.as_ptr().cast());
                            let scale = _mm256_set1_ps(w.scale * x.d);
                            *sum = _mm256_fmadd_ps(scale, pair(format, &w, activations), *sum);
                            minimums += w.minimum * x.sum;
                        }
                    }
                }
                sum(_mm256_add_ps(sums[0], sums[1])) + minimums
            }

            /// `R` adjacent weight rows times `C` inputs' activations: each
            /// weight block is unpacked once for the `C` inputs and each
            /// activation block loaded once for the `R` rows.
            ///
            /// # Safety
            /// The CPU must have the module's features; `weights` holds `R` rows of
            /// `blocks` blocks of `format`, and each of `xs` `blocks` blocks.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn tile<const R: usize, const C: usize>(
                format: Format,
                weights: &[u8],
                xs: [&[Q8Block]; C],
                blocks: usize,
            ) -> [[f32; C]; R] {
                let bytes = format.block_bytes();
                let row_bytes = blocks * bytes;
                let mut sums = [[_mm256_setzero_ps(); C]; R];
                let mut minimums = [[0f32; C]; R];
                for at in 0..blocks {
                    // SAFETY: `qs` is 32 bytes; the rest is the caller's.
                    let activations: [__m256i; C] = std::array::from_fn(|c| unsafe {
                        _mm256_loadu_si256(xs[c][at].qs.as_ptr().cast())
                    });
                    for r in 0..R {
                        let block = &weights[r * row_bytes + at * bytes..][..bytes];
                        // SAFETY: the caller's.
                        unsafe {
                            let w = unpack(format, block);
                            for c in 0..C {
                                let x = &xs[c][at];
                                let scale = _mm256_set1_ps(w.scale * x.d);
                                let products = pair(format, &w, activations[c]);
                                sums[r][c] = _mm256_fmadd_ps(scale, products, sums[r][c]);
                                minimums[r][c] += w.minimum * x.sum;
                            }
                        }
                    }
                }
                std::array::from_fn(|r| std::array::from_fn(|c| sum(sums[r][c]) + minimums[r][c]))
            }
        }
    };
}

/// Pairs of products fit in i16: at most 2 x 255 x 127 for Q8_0 after the
/// sign trick (|w| <= 128), 2 x 31 x 127 for Q5_0; `madd` then sums pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) fn maddubs_products(
    unsigned: std::arch::x86_64::__m256i,
    signed: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_madd_epi16(_mm256_maddubs_epi16(unsigned, signed), _mm256_set1_epi16(1))
}

/// The same sums in one instruction, without the i16 step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
pub(super) fn vnni_products(
    unsigned: std::arch::x86_64::__m256i,
    signed: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), unsigned, signed)
}

#[cfg(target_arch = "x86_64")]
x86_kernels!(avx2, "avx2,fma,f16c", super::maddubs_products);
#[cfg(target_arch = "x86_64")]
x86_kernels!(
    avx512,
    "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni",
    super::vnni_products
);

/// WebAssembly's 128-bit kernels. It has no 8-bit dot product, so each
/// block's bytes are widened to 16 bits and summed in pairs.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use std::arch::wasm32::*;

    use super::{BLOCK, Format, Q8Block, half_at};

    /// A block's 32 values as two vectors of 16 bytes (unsigned for Q4_1
    /// and Q5_0, signed for Q8_0), with its scale and what each unit of
    /// the activations' sum adds.
    struct Weights {
        low: v128,
        high: v128,
        scale: f32,
        minimum: f32,
    }

    /// Lane `i` of 16 holds 16 where bit `first + i` of `bits` is set.
    #[inline(always)]
    fn fifth_bits(bits: u32, first: u32) -> v128 {
        let spread = u32x4_splat(bits >> first);
        let bytes = i8x16_swizzle(
            spread,
            i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
        );
        let masks = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
        let set = i8x16_ne(v128_and(bytes, masks), u8x16_splat(0));
        v128_and(set, u8x16_splat(16))
    }

    #[inline(always)]
    fn unpack(format: Format, block: &[u8]) -> Weights {
        let load = |at: usize| {
            let bytes: [u8; 16] = block[at..at + 16].try_into().unwrap_or([0; 16]);
            u8x16(
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14],
                bytes[15],
            )
        };
        let nibbles = |packed: v128| {
            let low = u8x16_splat(0x0F);
            (v128_and(packed, low), v128_and(u8x16_shr(packed, 4), low))
        };
        match format {
            Format::Q4_1 => {
                let (low, high) = nibbles(load(4));
                Weights {
                    low,
                    high,
                    scale: half_at(block, 0),
                    minimum: half_at(block, 2),
                }
            }
            Format::Q5_0 => {
                let (low, high) = nibbles(load(6));
                let bits = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
                let scale = half_at(block, 0);
                Weights {
                    low: v128_or(low, fifth_bits(bits, 0)),
                    high: v128_or(high, fifth_bits(bits, 16)),
                    scale,
                    minimum: -16.0 * scale,
                }
            }
            Format::Q8_0 => Weights {
                low: load(2),
                high: load(18),
                scale: half_at(block, 0),
                minimum: 0.0,
            },
        }
    }

    /// The sums of 16 byte products in four lanes: `weights` as unsigned
    /// or signed bytes, the activations signed.
    #[inline(always)]
    fn products(signed: bool, weights: v128, activations: v128) -> v128 {
        let (low, high) = if signed {
            (
                i16x8_extend_low_i8x16(weights),
                i16x8_extend_high_i8x16(weights),
            )
        } else {
            (
                u16x8_extend_low_u8x16(weights),
                u16x8_extend_high_u8x16(weights),
            )
        };
        i32x4_add(
            i32x4_dot_i16x8(low, i16x8_extend_low_i8x16(activations)),
            i32x4_dot_i16x8(high, i16x8_extend_high_i8x16(activations)),
        )
    }

    /// One weight row times the activations.
    pub(super) fn dot(format: Format, weights: &[u8], xs: &[Q8Block]) -> f32 {
        let signed = format == Format::Q8_0;
        let mut sum = f32x4_splat(0.0);
        let mut minimums = 0f32;
        for (block, x) in weights.chunks_exact(format.block_bytes()).zip(xs) {
            let w = unpack(format, block);
            let (low, high) = x.qs.split_at(BLOCK / 2);
            let activations = |half: &[i8]| {
                let q: [i8; 16] = half.try_into().unwrap_or([0; 16]);
                i8x16(
                    q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9], q[10], q[11],
                    q[12], q[13], q[14], q[15],
                )
            };
            let products = i32x4_add(
                products(signed, w.low, activations(low)),
                products(signed, w.high, activations(high)),
            );
            let scaled = f32x4_mul(f32x4_convert_i32x4(products), f32x4_splat(w.scale * x.d));
            sum = f32x4_add(sum, scaled);
            minimums += w.minimum * x.sum;
        }
        f32x4_extract_lane::<0>(sum)
            + f32x4_extract_lane::<1>(sum)
            + f32x4_extract_lane::<2>(sum)
            + f32x4_extract_lane::<3>(sum)
            + minimums
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// The block formats against candle's dequantization of the same
    /// weights times the 8-bit activations.
    #[test]
    fn products_match_the_dequantized_weights() {
        let dtypes = [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q8_0];
        check_products(&dtypes, 96, |xs| {
            let blocks: Vec<Q8Block> = xs.chunks_exact(BLOCK).map(Q8Block::quantize).collect();
            blocks
                .iter()
                .flat_map(|b| b.qs.map(|q| f32::from(q) * b.d))
                .collect()
        });
    }

    /// The K-quants likewise, with activations in super-blocks.
    #[test]
    fn super_block_products_match_the_dequantized_weights() {
        check_products(&[GgmlDType::Q4K, GgmlDType::Q6K], 512, |xs| {
            xs.chunks_exact(SUPER_BLOCK)
                .flat_map(|values| Q8K::quantize(values).values().collect::<Vec<_>>())
                .collect()
        });
    }

    /// Each of `dtypes` at `columns` wide: the product against the
    /// dequantized weights times the activations as `round` rounds them, on
    /// every kernel path this CPU has; and the row lookup.
    fn check_products(dtypes: &[GgmlDType], columns: usize, round: impl Fn(&[f32]) -> Vec<f32>) {
        // 50 rows: three tasks of 16 taken four rows at a time, and a task
        // of 2; 6 inputs: a tile of 4 and 2 alone.
        let (rows, n) = (50, 6);
        let values: Vec<f32> = (0..rows * columns)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 5) as f32))
            .collect();
        let weight = Tensor::from_vec(values, (rows, columns), &Device::Cpu).unwrap();
        let xs: Vec<f32> = (0..n * columns)
            .map(|i| (i * 104729 % 997) as f32 / 498.0 - 1.0)
            .collect();
        let rounded = round(&xs);
        for (x, r) in xs.iter().zip(&rounded) {
            assert!(
                (x - r).abs() <= 1.0 / 254.0 + 1e-6,
                "8-bit rounding: {x} {r}"
            );
        }
        let xs = Tensor::from_vec(xs, (n, columns), &Device::Cpu).unwrap();
        for &dtype in dtypes {
            let quantized = QTensor::quantize(&weight, dtype).unwrap();
            let table = quantized.dequantize(&Device::Cpu).unwrap();
            let table_rows = table.to_vec2::<f32>().unwrap();
            let matrix = BlockMatrix::from_qtensor(&quantized).unwrap().unwrap();
            let got = matrix.matmul(&xs).unwrap().to_vec2::<f32>().unwrap();
            // One input alone takes the single-row kernel.
            let alone = matrix.matmul(&xs.narrow(0, 1, 1).unwrap()).unwrap();
            for (a, b) in alone.to_vec2::<f32>().unwrap()[0].iter().zip(&got[1]) {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{dtype:?} {a} {b}");
            }
            for (i, got) in got.iter().enumerate() {
                let input = &rounded[i * columns..][..columns];
                for (row, got) in got.iter().enumerate() {
                    let want: f32 = table_rows[row].iter().zip(input).map(|(w, x)| w * x).sum();
                    assert!(
                        (want - got).abs() < 1e-4 * (1.0 + want.abs()),
                        "{dtype:?} {want} {got}"
                    );
                }
            }
            // Every path this CPU has gives the active path's answer; the
            // SIMD paths sum in the same order, so theirs agree exactly.
            let flat_xs = xs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let flat_got: Vec<f32> = got.concat();
            let mut simd_answer: Option<Vec<f32>> = None;
            for path in KernelPath::available() {
                let answer = matrix.product(path, &flat_xs, n);
                for (a, b) in answer.iter().zip(&flat_got) {
                    assert!(
                        (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                        "{dtype:?} {path}: {a} {b}"
                    );
                }
                if path != KernelPath::Portable {
                    if let Some(other) = &simd_answer {
                        assert_eq!(other, &answer, "{dtype:?} {path}");
                    }
                    simd_answer = Some(answer);
                }
            }
            let rows_back = matrix.dequantize_rows(&[5, 0]).unwrap();
            assert_eq!(rows_back[..columns], table_rows[5]);
            assert_eq!(rows_back[columns..], table_rows[0]);
            assert!(matrix.dequantize_rows(&[rows as u32]).is_err());
        }
    }
}
