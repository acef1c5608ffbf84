"""One controller per capability: a panel's intents become engine requests, its job kinds'
events become its state.

- ``video.py``         — the Video panel: upload, control preview, ``video_edit`` jobs
- ``robustness.py``    — the Robustness panel: ``prompt_robustness`` probes and their report
- ``prompt_tools.py``  — the prompt boxes: token counts per chunk, the installed LoRAs
"""
