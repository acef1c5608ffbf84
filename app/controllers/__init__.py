"""One controller per capability: a panel's intents become engine requests, its job kinds'
events become its state.

Each is handed the :class:`~app.session.EngineSession` (client, ``spawn``, notices) and, where
it keeps files, the :class:`~app.library.Library`, and listens to its own job kinds with
``session.claim(kinds, self.handle_event)``:

- ``generate.py``      — the Prompt panel: ``generate`` jobs (and kinds nobody claimed),
  retry, BayesDiff variations, recipes put back into the panel
- ``compare.py``       — the Compare dialog: ``sampler_grid`` jobs, grid cells opened large
- ``canvas_jobs.py``   — what generate and compare share: the canvas follows, previews, results
- ``fits.py``          — ``analytic_fit``, ``calibration_fit``, ``uncertainty_fit`` and the
  loaded model's fits
- ``video.py``         — the Video panel: upload, control preview, ``video_edit`` jobs
- ``robustness.py``    — the Robustness panel: ``prompt_robustness`` probes and their report
- ``prompt_tools.py``  — the prompt boxes: token counts per chunk, the installed LoRAs
- ``results.py``       — saved results back on screen (History, Queue, a dropped file)
- ``queue.py``         — cancel a job, reorder the queue
"""
