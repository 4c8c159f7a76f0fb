//! Which CPU kernels run. The path is chosen once, from what the CPU has,
//! unless `STARCAST_KERNELS` forces one (`avx512`, `avx2` or `portable`),
//! to test a path or to see what an older CPU would get. A forced path the
//! CPU lacks falls back to the best it has, with a warning.
//!
//! The path covers Starcast's own kernels (the convolutions, the block
//! products of GGUF weights); `gemm`, under the convolutions, picks its own
//! AVX-512 or AVX2 kernels from the CPU and follows no forcing.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The environment variable that forces a path.
pub const KERNELS_VAR: &str = "STARCAST_KERNELS";

/// A set of kernels, each for the instructions it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelPath {
    /// Plain Rust, for any CPU (and the reference the others are tested against).
    Portable,
    /// WebAssembly's 128-bit SIMD, fixed when the module is built
    /// (`-C target-feature=+simd128`): a browser without it can't load it.
    Simd128,
    /// AVX2 with FMA and F16C (x86-64 since 2013).
    Avx2,
    /// AVX-512 (F, BW, DQ, VL) with VNNI integer dot products, beside AVX2.
    Avx512,
}

impl KernelPath {
    pub const ALL: [KernelPath; 4] = [
        KernelPath::Portable,
        KernelPath::Simd128,
        KernelPath::Avx2,
        KernelPath::Avx512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Portable => "portable",
            KernelPath::Simd128 => "simd128",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            KernelPath::Portable => true,
            KernelPath::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => {
                KernelPath::Avx2.supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            KernelPath::Avx2 | KernelPath::Avx512 => false,
        }
    }

    /// The paths this CPU can run, portable first.
    pub fn available() -> Vec<KernelPath> {
        KernelPath::ALL
            .into_iter()
            .filter(|path| path.supported())
            .collect()
    }

    /// The fastest path this CPU can run.
    pub fn best() -> KernelPath {
        KernelPath::available()
            .pop()
            .unwrap_or(KernelPath::Portable)
    }

    /// `self` where the CPU can run it, else the best it can below it.
    fn or_best(self) -> KernelPath {
        KernelPath::available()
            .into_iter()
            .rfind(|&path| path <= self)
            .unwrap_or(KernelPath::Portable)
    }
}

impl fmt::Display for KernelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A kernel path name that is none of them.
#[derive(Debug, thiserror::Error)]
#[error("unknown kernel path '{0}': use avx512, avx2, simd128 or portable")]
pub struct UnknownKernelPath(String);

impl FromStr for KernelPath {
    type Err = UnknownKernelPath;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        KernelPath::ALL
            .into_iter()
            .find(|path| path.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownKernelPath(name.to_string()))
    }
}

/// The path every kernel takes in this process.
pub fn active() -> KernelPath {
    static ACTIVE: OnceLock<KernelPath> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let Ok(forced) = std::env::var(KERNELS_VAR) else {
            return KernelPath::best();
        };
        match forced.parse::<KernelPath>() {
            Ok(path) if path.supported() => path,
            Ok(path) => {
                let fallback = path.or_best();
                tracing::warn!(%path, %fallback, "this CPU can't run the forced kernel path");
                fallback
            }
            Err(error) => {
                tracing::warn!(%error, "ignoring {KERNELS_VAR}");
                KernelPath::best()
            }
        }
    })
}

/// `fn $name(path, args..)` running `$body` (an `#[inline(always)]`
/// function of plain Rust loops) compiled once for each path's
/// instructions, so the compiler vectorizes the same loops for AVX-512's
/// or AVX2's registers, and dispatching on `path`.
macro_rules! multiversion {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:path) => {
        $(#[$doc])*
        $vis fn $name(path: $crate::kernels::KernelPath, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl")]
                fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,f16c")]
                fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                match path {
                    // SAFETY: `path` is one this CPU supports: `kernels`
                    // checks the path it picks, the tests check theirs.
                    $crate::kernels::KernelPath::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::kernels::KernelPath::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::kernels::KernelPath::Portable
                    | $crate::kernels::KernelPath::Simd128 => {}
                }
            }
            // WebAssembly's SIMD is on for the whole module or not at all,
            // so there is one copy of the loops and nothing to choose.
            #[cfg(not(target_arch = "x86_64"))]
            let _ = path;
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_by_name_and_fall_back_to_what_the_cpu_has() {
        for path in KernelPath::ALL {
            assert_eq!(path.name().parse::<KernelPath>().unwrap(), path);
            assert!(path.or_best().supported());
            assert!(path.or_best() <= path);
        }
        assert_eq!(" AVX2 ".parse::<KernelPath>().unwrap(), KernelPath::Avx2);
        assert!("sse".parse::<KernelPath>().is_err());
        assert!(KernelPath::Portable.supported());
        assert!(KernelPath::best().supported());
        assert!(active().supported());
    }
}
