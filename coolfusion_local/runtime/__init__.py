"""How llama.cpp runs on this machine: choices that depend on the CPU and the llama.cpp build.

llama.cpp is compiled for the CPU it is installed on and picks its kernels at
run time, so a setting that is right on one machine can take the process down
on another. Such choices are made here, once per CPU and llama.cpp build, by
probing in a child process (`extra_buffers`), never in the user's own process.
"""
