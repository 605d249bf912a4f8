/// Stops the process with a message that names a misuse of a KyotoSync primitive.
///
/// Misuse is never answered with a silent wrong result or a hang: the message starts with
/// `BUG DETECTED:` and says what the caller did wrong.
package func bugDetected(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    fatalError("BUG DETECTED: \(message())", file: file, line: line)
}
