"""A trained model: its description, loading it from what training or export saved, one inference path."""
