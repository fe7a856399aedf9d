"""`python -m lipvae_tf` runs the main job."""
from lipvae_tf.bound_check import main

main()
