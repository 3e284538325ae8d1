import DiTEngine
import Foundation
import Testing

/// A `tetriserve serve` process with stdout and stderr as pipes (as a script would run it).
final class ServeProcess {
    let process = Process()
    let stdout = Pipe()
    let stderr = Pipe()
    var port = 0

    /// Starts the server on port 0 and waits (at most `timeout` s) for the `listening on` line.
    init(_ arguments: [String], timeout: Double = 60) throws {
        process.executableURL = URL(fileURLWithPath: try WorkerPool.locateExecutable())
        process.arguments = ["serve", "--port", "0"] + arguments
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        var line = ""
        let start = Date()
        let fd = stdout.fileHandleForReading.fileDescriptor
        while !line.contains("\n") && Date().timeIntervalSince(start) < timeout {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            var byte: UInt8 = 0
            guard read(fd, &byte, 1) == 1 else { break }
            line.append(Character(UnicodeScalar(byte)))
        }
        guard let range = line.range(of: "listening on http://127.0.0.1:"),
            let port = Int(line[range.upperBound...].prefix { $0.isNumber })
        else {
            process.terminate()
            throw POSIXError(.EIO)
        }
        self.port = port
    }

    /// Sends SIGTERM; waits at most `timeout` s for the exit. Returns the seconds it took, or nil.
    func terminate(timeout: Double) -> Double? {
        kill(process.processIdentifier, SIGTERM)
        return waitForExit(timeout: timeout)
    }

    func waitForExit(timeout: Double) -> Double? {
        let start = Date()
        while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return Date().timeIntervalSince(start)
    }

    var errorOutput: String {
        String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    func request(_ method: String, _ path: String, body: String? = nil) throws -> String {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n"
        if let body {
            text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
        }
        text += "Connection: close\r\n\r\n" + (body ?? "")
        return try rawExchangeBlocking(port: port, text, timeout: 30)
    }
}

@Suite(.serialized) struct ServeProcessTests {
    /// The port line arrives at once through a pipe; on SIGTERM the server keeps answering reads
    /// while the admitted job finishes, refuses new jobs with 503, and exits although a client
    /// holds a connection with an unfinished body (the idle timeout, 60 s, is not what ends it).
    @Test func drainKeepsAnsweringReadsAndAStalledClientCannotHoldTheExit() throws {
        let server = try ServeProcess(["--engine", "simulated", "--time-scale", "1", "--drain-timeout", "60"])
        // 30 steps of 2048² at degree 8 take about 4.1 s.
        let created = try server.request(
            "POST", "/v1/images/jobs", body: #"{"prompt":"p","size":"2048x2048","num_inference_steps":30}"#)
        #expect(statusCodes(created) == [202])
        let id = try #require(created.range(of: #""id":""#).map { created[$0.upperBound...].prefix { $0 != "\"" } })
        // A client that promises 100 bytes and sends 5.
        let stalled = try rawConnect(port: server.port)
        defer { close(stalled) }
        let partial =
            "POST /v1/images/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + "Content-Length: 100\r\n\r\n{\"pro"
        _ = partial.withCString { send(stalled, $0, strlen($0), 0) }
        usleep(100_000)
        kill(server.process.processIdentifier, SIGTERM)
        usleep(200_000)
        let status = try server.request("GET", "/v1/images/jobs/\(id)")
        #expect(statusCodes(status) == [200])
        #expect(status.contains("\"status\":\"running\""))
        let refused = try server.request("POST", "/v1/images/jobs", body: #"{"prompt":"p","size":"256x256"}"#)
        #expect(statusCodes(refused) == [503])
        #expect(refused.contains("shutting_down"))
        let health = try server.request("GET", "/healthz")
        #expect(health.contains("\"status\":\"draining\""))
        let seconds = server.waitForExit(timeout: 30)
        #expect(seconds != nil)
        #expect(server.process.terminationStatus == 0)
        let log = server.errorOutput
        #expect(log.contains("draining"))
        #expect(log.contains("drained: every admitted job finished"))
        #expect(log.contains("method=GET") && log.contains("path=/v1/images/jobs/\(id)") && log.contains("status=200"))
        #expect(log.contains("job_id=\(id)"))
        #expect(log.contains("exit"))
    }

    /// With a short idle timeout, unfinished headers and idle connections are closed by the server.
    @Test func slowAndIdleConnectionsAreClosed() throws {
        let server = try ServeProcess(["--engine", "simulated", "--idle-timeout", "1", "--log-level", "warning"])
        defer { _ = server.terminate(timeout: 30) }
        let idle = try rawConnect(port: server.port)
        let slow = try rawConnect(port: server.port)
        defer {
            close(idle)
            close(slow)
        }
        _ = "GET /healthz HTTP/1.1\r\nHost: loc".withCString { send(slow, $0, strlen($0), 0) }
        for fd in [idle, slow] {
            // The server closes it: recv returns 0 (or an error) well before 20 s.
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 20_000)
            var byte: UInt8 = 0
            #expect(ready == 1 && recv(fd, &byte, 1, 0) <= 0)
        }
        #expect(statusCodes(try server.request("GET", "/healthz")) == [200])
    }
}
