"""The states of a deployment a pipeline reports (`report deployment`, `push-metrics
deployment`): a module of its own, so that `devex --help` does not import the pipeline context
to name them."""

DEPLOYMENT_STATUSES = ("started", "succeeded", "failed")
