"""The blind A/B arena: two systems answer the same question, a person votes without knowing which is which.

pairings (which two systems, the A/B draw, the seed), comparisons (kept in the
conversation store), answering (both answers of one comparison on the engine),
prompts (prompt files for `arena run`), report (win rates, intervals, Bradley-Terry).
"""
