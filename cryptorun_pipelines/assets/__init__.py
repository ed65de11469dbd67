"""Asset factories (built from the config's cadences by ``cryptorun_pipelines.build``)."""
