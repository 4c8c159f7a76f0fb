//! GGUF's K-quant formats Q4_K and Q6_K, in super-blocks of 256 values
//! with a scale per sub-block: dequantization and the integer dot product
//! of a weight row with activations quantized to 8 bits per super-block
//! (llama.cpp's Q8_K). Gemma 3's attention outputs and down projections
//! are stored so. candle's own product ran on a pool of spinning threads
//! beside rayon's, which cost generation a fifth on two cores.

use half::f16;

use crate::kernels::KernelPath;

/// Values per super-block.
pub(super) const SUPER_BLOCK: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KFormat {
    /// `d`, `dmin` (f16), 8 pairs of 6-bit scales and minimums packed in
    /// 12 bytes, then 256 4-bit values: `x = d sc q - dmin m`.
    Q4K,
    /// 128 bytes of low 4 bits, 64 of high 2 bits, 16 signed 8-bit scales
    /// (one per 16 values), `d` (f16): `x = d sc (q - 32)`.
    Q6K,
}

impl KFormat {
    pub(super) fn block_bytes(self) -> usize {
        match self {
            KFormat::Q4K => 144,
            KFormat::Q6K => 210,
        }
    }
}

/// 256 activations as 8-bit integers, `x ≈ d q`, with the sums of each 16.
#[derive(Clone, Debug)]
pub(super) struct Q8K {
    d: f32,
    qs: [i8; SUPER_BLOCK],
    sums: [i16; SUPER_BLOCK / 16],
}

impl Q8K {
    pub(super) fn quantize(values: &[f32]) -> Self {
        let largest = values
            .iter()
            .copied()
            .fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
        let mut block = Q8K {
            d: 0.0,
            qs: [0; SUPER_BLOCK],
            sums: [0; SUPER_BLOCK / 16],
        };
        if largest == 0.0 {
            return block;
        }
        let inverse = -127.0 / largest;
        for (q, v) in block.qs.iter_mut().zip(values) {
            *q = (v * inverse).round().clamp(-128.0, 127.0) as i8;
        }
        for (sum, qs) in block.sums.iter_mut().zip(block.qs.chunks_exact(16)) {
            *sum = qs.iter().map(|&q| i16::from(q)).sum();
        }
        block.d = 1.0 / inverse;
        block
    }

    #[cfg(test)]
    pub(super) fn values(&self) -> impl Iterator<Item = f32> + '_ {
        self.qs.iter().map(|&q| f32::from(q) * self.d)
    }
}

fn half_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Sub-block `j`'s 6-bit scale and minimum of a Q4_K block.
fn q4k_scale_min(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

/// The 256 values of a Q6_K block, unsigned (`0..64`, 32 above the
/// value), in order.
fn q6k_values(block: &[u8]) -> [u8; SUPER_BLOCK] {
    let mut values = [0u8; SUPER_BLOCK];
    for half in 0..2 {
        let low = &block[64 * half..][..64];
        let high = &block[128 + 32 * half..][..32];
        let out = &mut values[128 * half..][..128];
        for l in 0..32 {
            out[l] = (low[l] & 0x0F) | ((high[l] & 3) << 4);
            out[l + 32] = (low[l + 32] & 0x0F) | (((high[l] >> 2) & 3) << 4);
            out[l + 64] = (low[l] >> 4) | (((high[l] >> 4) & 3) << 4);
            out[l + 96] = (low[l + 32] >> 4) | (((high[l] >> 6) & 3) << 4);
        }
    }
    values
}

/// One block's 256 values, appended to `out`.
pub(super) fn dequantize(format: KFormat, block: &[u8], out: &mut Vec<f32>) {
    match format {
        KFormat::Q4K => {
            let (d, dmin) = (half_at(block, 0), half_at(block, 2));
            let scales = &block[4..16];
            for (chunk, qs) in block[16..144].chunks_exact(32).enumerate() {
                for (j, shift) in [(2 * chunk, 0), (2 * chunk + 1, 4)] {
                    let (scale, min) = q4k_scale_min(scales, j);
                    let (scale, min) = (d * f32::from(scale), dmin * f32::from(min));
                    out.extend(
                        qs.iter()
                            .map(|q| f32::from((q >> shift) & 0x0F) * scale - min),
                    );
                }
            }
        }
        KFormat::Q6K => {
            let d = half_at(block, 208);
            let values = q6k_values(block);
            for (sub, values) in values.chunks_exact(16).enumerate() {
                let scale = d * f32::from(block[192 + sub] as i8);
                out.extend(values.iter().map(|&q| (f32::from(q) - 32.0) * scale));
            }
        }
    }
}

/// A weight row (as many blocks as `xs`) times the activations.
pub(super) fn dot(path: KernelPath, format: KFormat, weights: &[u8], xs: &[Q8K]) -> f32 {
    // SAFETY (both arms): `path` is one this CPU supports (checked by
    // `kernels`, or by the tests that pick it), and `weights` holds as
    // many blocks as `xs`.
    #[cfg(target_arch = "x86_64")]
    match path {
        KernelPath::Avx512 => return unsafe { avx512::dot(format, weights, xs) },
        KernelPath::Avx2 => return unsafe { avx2::dot(format, weights, xs) },
        KernelPath::Portable | KernelPath::Simd128 => {}
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = path;
    weights
        .chunks_exact(format.block_bytes())
        .zip(xs)
        .map(|(block, x)| match format {
            KFormat::Q4K => dot_q4k(block, x),
            KFormat::Q6K => dot_q6k(block, x),
        })
        .sum()
}

fn dot_q4k(block: &[u8], x: &Q8K) -> f32 {
    let (d, dmin) = (half_at(block, 0) * x.d, half_at(block, 2) * x.d);
    let scales = &block[4..16];
    let (mut products, mut minimums) = (0i32, 0i32);
    for (chunk, qs) in block[16..144].chunks_exact(32).enumerate() {
        for (j, shift) in [(2 * chunk, 0), (2 * chunk + 1, 4)] {
            let (scale, min) = q4k_scale_min(scales, j);
            let activations = &x.qs[32 * j..][..32];
            let sum: i32 = qs
                .iter()
                .zip(activations)
                .map(|(q, &a)| i32::from((q >> shift) & 0x0F) * i32::from(a))
                .sum();
            products += i32::from(scale) * sum;
            minimums += i32::from(min) * (i32::from(x.sums[2 * j]) + i32::from(x.sums[2 * j + 1]));
        }
    }
    d * products as f32 - dmin * minimums as f32
}

fn dot_q6k(block: &[u8], x: &Q8K) -> f32 {
    let values = q6k_values(block);
    let mut total = 0i32;
    for (sub, (values, activations)) in values
        .chunks_exact(16)
        .zip(x.qs.chunks_exact(16))
        .enumerate()
    {
        let sum: i32 = values
            .iter()
            .zip(activations)
            .map(|(&q, &a)| i32::from(q) * i32::from(a))
            .sum();
        let offset = 32 * i32::from(x.sums[sub]);
        total += i32::from(block[192 + sub] as i8) * (sum - offset);
    }
    half_at(block, 208) * x.d * total as f32
}

/// The x86 kernels for one instruction set: `$features` enabled, and
/// `$products` summing the `u8 x i8` products of 32 lanes in groups of 4.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_kernels {
    ($name:ident, $features:literal, $products:path) => {
        mod $name {
            use std::arch::x86_64::*;

            use super::{KFormat, Q8K, half_at, q4k_scale_min};

            #[target_feature(enable = $features)]
            fn sum(v: __m256i) -> i32 {
                let halves =
                    _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
                let pairs = _mm_add_epi32(halves, _mm_shuffle_epi32(halves, 0b01_00_11_10));
                _mm_cvtsi128_si32(_mm_add_epi32(
                    pairs,
                    _mm_shuffle_epi32(pairs, 0b10_11_00_01),
                ))
            }

            /// # Safety
            /// The CPU must have the module's features; `weights` holds
            /// `xs.len()` blocks of `format`.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn dot(format: KFormat, weights: &[u8], xs: &[Q8K]) -> f32 {
                let mut total = 0f32;
                for (block, x) in weights.chunks_exact(format.block_bytes()).zip(xs) {
                    // SAFETY: the caller's; every load stays within the blocks.
                    total += unsafe {
                        match format {
                            KFormat::Q4K => q4k(block, x),
                            KFormat::Q6K => q6k(block, x),
                        }
                    };
                }
                total
            }

            /// # Safety
            /// As for [`dot`], one block.
            #[target_feature(enable = $features)]
            unsafe fn q4k(block: &[u8], x: &Q8K) -> f32 {
                let scales = &block[4..16];
                let low = _mm256_set1_epi8(0x0F);
                let mut products = _mm256_setzero_si256();
                let mut minimums = 0i32;
                for chunk in 0..4 {
                    // SAFETY: 32 bytes of values per chunk after the 16 of scales,
                    // and 64 activations per chunk.
                    let (packed, first, second) = unsafe {
                        (
                            _mm256_loadu_si256(block.as_ptr().add(16 + 32 * chunk).cast()),
                            _mm256_loadu_si256(x.qs.as_ptr().add(64 * chunk).cast()),
                            _mm256_loadu_si256(x.qs.as_ptr().add(64 * chunk + 32).cast()),
                        )
                    };
                    let (scale_a, min_a) = q4k_scale_min(scales, 2 * chunk);
                    let (scale_b, min_b) = q4k_scale_min(scales, 2 * chunk + 1);
                    let a = $products(_mm256_and_si256(packed, low), first);
                    let b = $products(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low), second);
                    products = _mm256_add_epi32(
                        products,
                        _mm256_mullo_epi32(a, _mm256_set1_epi32(i32::from(scale_a))),
                    );
                    products = _mm256_add_epi32(
                        products,
                        _mm256_mullo_epi32(b, _mm256_set1_epi32(i32::from(scale_b))),
                    );
                    let sums = |j: usize| i32::from(x.sums[2 * j]) + i32::from(x.sums[2 * j + 1]);
                    minimums +=
                        i32::from(min_a) * sums(2 * chunk) + i32::from(min_b) * sums(2 * chunk + 1);
                }
                let (d, dmin) = (half_at(block, 0) * x.d, half_at(block, 2) * x.d);
                d * sum(products) as f32 - dmin * minimums as f32
            }

            /// # Safety
            /// As for [`dot`], one block.
            #[target_feature(enable = $features)]
            unsafe fn q6k(block: &[u8], x: &Q8K) -> f32 {
                let low_bits = _mm256_set1_epi8(0x0F);
                let two_bits = _mm256_set1_epi8(3);
                let mut products = _mm256_setzero_si256();
                let mut offsets = 0i32;
                for half in 0..2 {
                    // SAFETY: 64 bytes of low bits and 32 of high bits per half,
                    // 128 activations per half.
                    let (low_a, low_b, high) = unsafe {
                        (
                            _mm256_loadu_si256(block.as_ptr().add(64 * half).cast()),
                            _mm256_loadu_si256(block.as_ptr().add(64 * half + 32).cast()),
                            _mm256_loadu_si256(block.as_ptr().add(128 + 32 * half).cast()),
                        )
                    };
                    let quarters = [
                        _mm256_or_si256(
                            _mm256_and_si256(low_a, low_bits),
                            _mm256_slli_epi16(_mm256_and_si256(high, two_bits), 4),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(low_b, low_bits),
                            _mm256_slli_epi16(
                                _mm256_and_si256(_mm256_srli_epi16(high, 2), two_bits),
                                4,
                            ),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(low_a, 4), low_bits),
                            _mm256_slli_epi16(
                                _mm256_and_si256(_mm256_srli_epi16(high, 4), two_bits),
                                4,
                            ),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(low_b, 4), low_bits),
                            _mm256_slli_epi16(
                                _mm256_and_si256(_mm256_srli_epi16(high, 6), two_bits),
                                4,
                            ),
                        ),
                    ];
                    for (quarter, values) in quarters.into_iter().enumerate() {
                        let at = 128 * half + 32 * quarter;
                        let sub = at / 16;
                        // SAFETY: 32 activations from `at`.
                        let activations =
                            unsafe { _mm256_loadu_si256(x.qs.as_ptr().add(at).cast()) };
                        let (scale_a, scale_b) = (
                            i32::from(block[192 + sub] as i8),
                            i32::from(block[193 + sub] as i8),
                        );
                        let scales = _mm256_setr_epi32(
                            scale_a, scale_a, scale_a, scale_a, scale_b, scale_b, scale_b, scale_b,
                        );
                        let sums = $products(values, activations);
                        products = _mm256_add_epi32(products, _mm256_mullo_epi32(sums, scales));
                        offsets +=
                            scale_a * i32::from(x.sums[sub]) + scale_b * i32::from(x.sums[sub + 1]);
                    }
                }
                half_at(block, 208) * x.d * (sum(products) - 32 * offsets) as f32
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
x86_kernels!(
    avx2,
    "avx2,fma,f16c",
    super::super::blocks::maddubs_products
);
#[cfg(target_arch = "x86_64")]
x86_kernels!(
    avx512,
    "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni",
    super::super::blocks::vnni_products
);
