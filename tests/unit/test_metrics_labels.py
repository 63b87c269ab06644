"""Label values of the request metrics stay few, whatever clients send."""

from prometheus_client.parser import text_string_to_metric_families

from workshop.platform.metrics import Metrics


def request_methods(metrics: Metrics) -> set[str]:
    body, _ = metrics.render()
    return {
        sample.labels["method"]
        for family in text_string_to_metric_families(body.decode())
        if family.name == "http_requests"
        for sample in family.samples
        if "method" in sample.labels
    }


def test_a_made_up_method_is_counted_as_other():
    metrics = Metrics("test")
    for number in range(20):
        metrics.observe("/api/tags", f"ZZ{number}", 405, 0.001)
    metrics.observe("/api/tags", "GET", 200, 0.001)
    assert request_methods(metrics) == {"other", "GET"}
