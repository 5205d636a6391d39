"""Training drivers and closed-form experiments a chapter needs beyond a `Method`.

One file per chapter (federated rounds, BAN generations, teacher fits for the zoo, the closed-form
and simulation chapters). Imported by chapters and tests, never by `kdlib.train` or `kdlib.batched`.
"""
