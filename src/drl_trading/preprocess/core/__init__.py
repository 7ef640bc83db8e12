"""Business logic of preprocessing: pure computation plus the service that sequences it."""
