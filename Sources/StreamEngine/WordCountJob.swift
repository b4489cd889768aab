/// The built-in word count, written against the public stream API.
///
/// - Counts topic: one record per word whose running total changed in the batch; key = the
///   word, value = `{"word":"w","count":TOTAL,"batch_time":MS}`, header `sluice-batch` = the
///   batch time in decimal ASCII.
/// - Windows topic: one record per (window, word) when the window closes (or on
///   ``StreamGraph/flushWindows()``); key = the word, value =
///   `{"word":"w","count":N,"window_start":MS,"window_end":MS}`.
public enum WordCountJob {
    /// The job's topics and windowing; durations in milliseconds.
    public struct Configuration: Sendable, Hashable {
        /// The topic of running totals.
        public var countsTopic: String
        /// The topic of windowed counts.
        public var windowsTopic: String
        /// The window length.
        public var windowLength: Int64
        /// The distance between window starts.
        public var slide: Int64
        /// How long after its end a window still accepts elements.
        public var allowedLateness: Int64

        /// Creates a configuration; `slide` defaults to `windowLength` (tumbling windows).
        public init(
            countsTopic: String = "word-counts",
            windowsTopic: String = "word-counts-windowed",
            windowLength: Int64 = 60_000,
            slide: Int64? = nil,
            allowedLateness: Int64 = 0
        ) {
            self.countsTopic = countsTopic
            self.windowsTopic = windowsTopic
            self.windowLength = windowLength
            self.slide = slide ?? windowLength
            self.allowedLateness = allowedLateness
        }
    }

    /// Adds the word count to `graph`: stateful operators `word-totals` and `word-windows`.
    ///
    /// Throws, leaving the graph untouched, if the window parameters are invalid (see ``WindowSpec``).
    ///
    /// - Returns: A view of the running totals, for state queries from other threads.
    @discardableResult
    public static func build(
        on graph: StreamGraph, configuration: Configuration = Configuration()
    ) throws(StreamEngineError) -> StateView<String, Int64> {
        let window = try WindowSpec(
            length: configuration.windowLength, slide: configuration.slide, allowedLateness: configuration.allowedLateness)
        let words = graph.input().flatMapWords()
        let totals = StateView<String, Int64>()

        words.countByValue()
            .updateStateByKey(name: "word-totals", view: totals) { (_, counts: [Int64], total: Int64?) in
                counts.reduce(total ?? 0, +)
            }
            .output { batchTime, totals, emit in
                let stamp = BatchStamp(batchTime: batchTime)
                for (word, total) in totals {
                    emit(totalRecord(word: word, total: total, stamp: stamp, topic: configuration.countsTopic))
                }
            }

        words.countByValueAndWindow(name: "word-windows", window)
            .output { _, counts, emit in
                for (word, count) in counts {
                    emit(windowRecord(word: word, count: count.value, window: count.window, topic: configuration.windowsTopic))
                }
            }
        return totals
    }

    /// The fixed parts of the records' JSON values, as bytes: appending an array is a copy, appending a `String`'s
    /// UTF-8 view is not.
    private enum JSON {
        static let word = Array(#"{"word":"#.utf8)
        static let count = Array(#","count":"#.utf8)
        static let windowStart = Array(#","window_start":"#.utf8)
        static let windowEnd = Array(#","window_end":"#.utf8)
    }

    /// The parts of a batch's counts records that do not depend on the word, made once per batch: the header (one
    /// array that all the batch's records share) and the end of the value.
    public struct BatchStamp {
        let headers: [(name: String, value: [UInt8])]
        let valueEnd: [UInt8]

        public init(batchTime: Int64) {
            var time: [UInt8] = []
            time.appendDecimal(batchTime)
            headers = [(name: "sluice-batch", value: time)]
            valueEnd = Array(#","batch_time":"#.utf8) + time + [UInt8(ascii: "}")]
        }
    }

    /// The counts-topic record of a word's running total after the batch of `stamp`.
    public static func totalRecord(word: String, total: Int64, stamp: BatchStamp, topic: String) -> OutputRecord {
        withUTF8(of: word) { word in
            var value: [UInt8] = []
            value.reserveCapacity(JSON.word.count + word.count + 2 + JSON.count.count + 20 + stamp.valueEnd.count)
            value.append(contentsOf: JSON.word)
            value.appendJSONString(utf8: word)
            value.append(contentsOf: JSON.count)
            value.appendDecimal(total)
            value.append(contentsOf: stamp.valueEnd)
            return OutputRecord(topic: topic, key: Array(word), value: value, headers: stamp.headers)
        }
    }

    /// The windows-topic record of a word's count in a closed window.
    public static func windowRecord(word: String, count: Int64, window: TimeWindow, topic: String) -> OutputRecord {
        withUTF8(of: word) { word in
            var value: [UInt8] = []
            value.reserveCapacity(
                JSON.word.count + word.count + 2 + JSON.count.count + JSON.windowStart.count + JSON.windowEnd.count + 61)
            value.append(contentsOf: JSON.word)
            value.appendJSONString(utf8: word)
            value.append(contentsOf: JSON.count)
            value.appendDecimal(count)
            value.append(contentsOf: JSON.windowStart)
            value.appendDecimal(window.start)
            value.append(contentsOf: JSON.windowEnd)
            value.appendDecimal(window.end)
            value.append(UInt8(ascii: "}"))
            return OutputRecord(topic: topic, key: Array(word), value: value)
        }
    }

    /// `body` of the word's UTF-8 bytes, read in place (`Array(word.utf8)` goes through a generic copy, byte by byte).
    private static func withUTF8<Result>(of word: String, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        var word = word
        return word.withUTF8(body)
    }
}
