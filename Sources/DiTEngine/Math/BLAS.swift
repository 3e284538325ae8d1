import COpenBLAS
import Foundation

/// OpenBLAS set-up and the single-precision GEMM every layer goes through.
public enum BLAS {
    /// The kernel family OpenBLAS chose (for example `Cooperlake`, `Haswell`, or a slow generic
    /// fallback such as `Prescott` when it does not recognise the CPU).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Threads OpenBLAS uses for one call.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Restricts OpenBLAS to `count` threads.
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(count))
    }

    /// The `OPENBLAS_CORETYPE` that suits this CPU, from its feature flags in `/proc/cpuinfo`,
    /// or nil when none of the known families matches (OpenBLAS then detects on its own).
    public static func recommendedCoreType(cpuFlags: Set<String>? = nil) -> String? {
        let flags = cpuFlags ?? currentCPUFlags()
        if flags.contains("avx512_bf16") { return "Cooperlake" }
        if flags.contains("avx512f") && flags.contains("avx512bw") { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        if flags.contains("avx") { return "Sandybridge" }
        return nil
    }

    /// `OPENBLAS_CORETYPE` from this process's environment when set, else
    /// ``recommendedCoreType(cpuFlags:)``: the core type workers are started with.
    public static func configuredCoreType() -> String? {
        if let set = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !set.isEmpty { return set }
        return recommendedCoreType()
    }

    /// The CPU feature flags of the first processor listed in `/proc/cpuinfo` (empty elsewhere).
    public static func currentCPUFlags() -> Set<String> {
        guard let text = try? readTextFile("/proc/cpuinfo") else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    /// `C[m×n] = alpha · op(A) · op(B) + beta · C`, all row-major with the given leading
    /// dimensions (`transB` multiplies by the transpose of a row-major `n×k` B).
    @inline(__always)
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }
}
