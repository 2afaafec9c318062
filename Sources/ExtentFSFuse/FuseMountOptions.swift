/// How the adapter mounts: everything that ends up in the kernel mount options.
public struct FuseMountOptions: Sendable {
    /// Shown as the mount source in /proc/self/mountinfo; `extentfs umount` finds the image by it,
    /// so it must be the absolute image path or the NBD URI.
    public var fsName: String
    public var allowOther: Bool = false
    /// Extra comma-separated option groups, as given with -o.
    public var extraOptions: [String] = []
    /// Upper bound on libfuse worker threads.
    public var maxThreads: Int = 16

    public init(fsName: String) {
        self.fsName = fsName
    }

    /// The single string passed as `-o` to libfuse.
    var optionString: String {
        var parts = ["default_permissions", "fsname=\(Self.escape(fsName))", "subtype=extentfs"]
        if allowOther { parts.append("allow_other") }
        parts += extraOptions.filter { !$0.isEmpty }
        return parts.joined(separator: ",")
    }

    /// libfuse's option parser splits on commas and treats backslash as an escape.
    private static func escape(_ value: String) -> String {
        var escaped = ""
        for character in value {
            if character == "," || character == "\\" { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}
