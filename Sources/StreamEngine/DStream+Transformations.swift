extension DStream {
    /// Transforms each element; the result keeps the element's event time.
    ///
    /// `transform` must be a function of its element, as in Spark: over a dictionary-encoded stream (the words of
    /// ``flatMapWords()``) it runs once per distinct value of the batch, not once per element.
    public func map<Output>(_ transform: @escaping (Element) -> Output) -> DStream<Output> {
        deriveMap(transform)
    }

    /// Replaces each element by the elements of a sequence, all with the original event time.
    public func flatMap<Output: Sequence>(_ transform: @escaping (Element) -> Output) -> DStream<Output.Element> {
        derive { batch, _ in
            var result = Elements<Output.Element>()
            for (value, time) in zip(batch.decodedValues, batch.decodedTimes) {
                for output in transform(value) {
                    result.append(output, at: time)
                }
            }
            return result
        }
    }

    /// Keeps the elements satisfying `isIncluded`.
    public func filter(_ isIncluded: @escaping (Element) -> Bool) -> DStream<Element> {
        derive { batch, _ in
            var result = Elements<Element>()
            for (value, time) in zip(batch.decodedValues, batch.decodedTimes) where isIncluded(value) {
                result.append(value, at: time)
            }
            return result
        }
    }
}
