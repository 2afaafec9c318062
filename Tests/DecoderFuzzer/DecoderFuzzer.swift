// The coverage-guided fuzzer of the decoders: libFuzzer calls this with each input it makes.
// Built only by scripts/fuzz.sh (EXTENTFS_FUZZ=1 swift build --sanitize=fuzzer), since its main
// is libFuzzer's; what it does is DecoderFuzzing's, which the tests also run on the corpus.
@testable import ExtentFS

@_cdecl("LLVMFuzzerTestOneInput")
public func decoderFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    DecoderFuzzing.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
