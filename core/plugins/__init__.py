"""Backend plugins: the pluggy contract and its loader."""
