from tests.profiles.sample_policy import policy

__all__ = ["policy"]
