"""taskcast: Asynchronous Request-Reply for AWS serverless APIs, with push."""

__version__ = "0.1.0"
