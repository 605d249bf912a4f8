// kyotoPrecondition: Kyoto's checks for misuse and broken invariants.
//
// Swift's `precondition` and `preconditionFailure` drop their message in optimized builds: they trap with a
// bare "precondition failure" (or nothing at all), so a server built with `-c release` would die without
// naming the mistake. `fatalError` prints its message in every build configuration, so Kyoto's checks go
// through it. The check itself costs the same as `precondition` (an inlined branch; the message is built
// only on failure).

/// Traps with `message` (printed in every build configuration) when `condition` is false.
@inlinable
@inline(__always)
package func kyotoPrecondition(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if _slowPath(!condition()) { fatalError(message(), file: file, line: line) }
}
