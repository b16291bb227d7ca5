"""Training: tf.data input pipeline, losses and metrics, resumable epoch loop with early stopping."""
