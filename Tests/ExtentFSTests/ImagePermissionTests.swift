import XCTest
@testable import ExtentFS

/// The image holds every file's bytes, and the modes of the files inside protect nothing from
/// whoever may read the image itself. mkfs used to create it 0644, so on a shared machine any
/// user could read every file of a mount they were kept out of by reading /var/tmp/extentfs.img.
final class ImagePermissionTests: XCTestCase {
    func testANewImageIsReadableByItsOwnerOnly() throws {
        let volume = try TestVolume()
        var st = stat()
        XCTAssertEqual(stat(volume.image, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "mode \(String(st.st_mode & 0o777, radix: 8))")
    }
}
