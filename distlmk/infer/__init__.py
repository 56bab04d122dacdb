"""Using a trained model: load it from what training or export saved, predict, export."""
