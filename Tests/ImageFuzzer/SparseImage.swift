import Foundation

/// How a damaged image is kept in the regression corpus: small, since images are mostly zeros.
///
///     "EXFZIMG1", u64 image size, then until the end: u64 offset, u32 length, that many bytes
///
/// Only the 512-byte sectors that are not all zeros are stored.
enum SparseImage {
    static let magic = Array("EXFZIMG1".utf8)
    static let fileExtension = "fzimg"

    static func encode(_ image: [UInt8]) -> [UInt8] {
        var out = magic
        append(UInt64(image.count), width: 8, to: &out)
        var sector = 0
        while sector < image.count {
            let end = min(image.count, sector + 512)
            if image[sector..<end].contains(where: { $0 != 0 }) {
                var runEnd = end
                while runEnd < image.count, image[runEnd..<min(image.count, runEnd + 512)].contains(where: { $0 != 0 }) {
                    runEnd = min(image.count, runEnd + 512)
                }
                append(UInt64(sector), width: 8, to: &out)
                append(UInt64(runEnd - sector), width: 4, to: &out)
                out += image[sector..<runEnd]
                sector = runEnd
            } else {
                sector = end
            }
        }
        return out
    }

    static func decode(_ file: [UInt8]) throws -> [UInt8] {
        guard file.count >= 16, Array(file[0..<8]) == magic else { throw FuzzerError("not a sparse image (\(magic))") }
        let size = Int(ImageLayout.read(file, 8, 8))
        guard size <= 1 << 30 else { throw FuzzerError("sparse image of \(size) bytes is too large") }
        var image = [UInt8](repeating: 0, count: size)
        var cursor = 16
        while cursor + 12 <= file.count {
            let offset = Int(ImageLayout.read(file, cursor, 8))
            let length = Int(ImageLayout.read(file, cursor + 8, 4))
            cursor += 12
            guard cursor + length <= file.count, offset + length <= size else { throw FuzzerError("sparse image is damaged") }
            image.replaceSubrange(offset..<offset + length, with: file[cursor..<cursor + length])
            cursor += length
        }
        return image
    }

    private static func append(_ value: UInt64, width: Int, to bytes: inout [UInt8]) {
        for index in 0..<width { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
    }
}

struct FuzzerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
