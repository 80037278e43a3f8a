"""Background jobs (#34): a store of jobs (store.py), a runner feeding them to the model loop at background
priority, signed callbacks."""
