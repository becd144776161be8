"""The CLIP library: towers, loss, data, checkpoints, inference. Everything else imports it."""
