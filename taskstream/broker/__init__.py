"""Redis Streams: the only room that imports redis. Keys, producer, consumer and Lua scripts."""
