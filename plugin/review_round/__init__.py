"""The Label Studio review round: send a batch, load the reviews back, fine-tune and tune thresholds on them."""
