#ifndef SLUICE_CRDKAFKA_SHIM_H
#define SLUICE_CRDKAFKA_SHIM_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/// Pushes one error onto the mock broker's request error stack for `apikey`.
/// `rd_kafka_mock_push_request_errors` is variadic and cannot be called from Swift.
static inline void sluice_mock_push_request_error(rd_kafka_mock_cluster_t *mcluster, int16_t apikey,
                                                  rd_kafka_resp_err_t err) {
    rd_kafka_mock_push_request_errors_array(mcluster, apikey, 1, &err);
}

#endif
