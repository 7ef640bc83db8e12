"""The composition: settings, adapter factories, the topic table, each service's composition,
the embedded runtime, one process per service, and the workflows the commands run."""
