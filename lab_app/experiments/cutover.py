async def run_subset_cutover(*a, **k): raise NotImplementedError
