#!/bin/sh
# Puts the `hitch` command on PATH after the deb is installed.
ln -sf '/opt/${productFilename}/resources/bin/hitch' /usr/bin/hitch
