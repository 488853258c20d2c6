mod archive;
mod cartesia;
mod delete;
mod query;
mod reliability;
mod ultravox;
